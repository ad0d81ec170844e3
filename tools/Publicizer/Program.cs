// Makes a compile-time-only copy of a .NET assembly in which every type, method and field is public.
// FlatMinima.MLNet compiles against such copies of Microsoft.ML.Core/Data (ML.NET 5 keeps its model-persistence API
// internal) and relies on [IgnoresAccessChecksTo] at run time. The copies are never shipped.
// Usage: Publicizer <input.dll> <output.dll>   (skips the work when the output is newer than the input)
using System;
using System.IO;
using System.Linq;
using Mono.Cecil;

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: Publicizer <input.dll> <output.dll>");
    return 2;
}
string input = args[0], output = args[1];
if (File.Exists(output) && File.GetLastWriteTimeUtc(output) >= File.GetLastWriteTimeUtc(input))
    return 0;

var resolver = new DefaultAssemblyResolver();
resolver.AddSearchDirectory(Path.GetDirectoryName(Path.GetFullPath(input))!);
using (var assembly = AssemblyDefinition.ReadAssembly(input, new ReaderParameters { AssemblyResolver = resolver }))
{
    foreach (var type in assembly.MainModule.GetTypes())
    {
        // Polyfills of System.* types and ML.NET's own BestFriendAttribute would clash with the real ones.
        if (type.Namespace.StartsWith("System", StringComparison.Ordinal) || type.Name == "BestFriendAttribute")
            continue;
        if (type.IsNested) type.IsNestedPublic = true; else type.IsPublic = true;
        var eventNames = type.Events.Select(e => e.Name).ToHashSet();
        foreach (var method in type.Methods)
            method.IsPublic = true;
        foreach (var field in type.Fields)
            if (!eventNames.Contains(field.Name)) // an event's backing field shares its name
                field.IsPublic = true;
    }
    string tmp = output + ".tmp";
    assembly.Write(tmp);
    File.Move(tmp, output, overwrite: true);
}
return 0;
