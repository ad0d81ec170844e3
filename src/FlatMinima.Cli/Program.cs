using System;
using System.Threading;
using FlatMinima.Cli;
using Spectre.Console;

// Ctrl+C asks the running command to stop at the next batch (training keeps the last completed epoch and the checkpoint);
// a second Ctrl+C ends the process at once.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    if (cancellation.IsCancellationRequested) return;
    e.Cancel = true;
    Console.Error.WriteLine("Stopping at the next batch… (Ctrl+C again to quit at once)");
    cancellation.Cancel();
};
return FlatMinimaApp.Run(args, AnsiConsole.Console, Console.Error, cancellation.Token);
