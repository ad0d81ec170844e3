using System.Reflection;

namespace FlatMinima.Cli;

/// <summary>The tool's identity.</summary>
public static class Tool
{
    /// <summary>The tool's informational version (the package version).</summary>
    public static string Version { get; } =
        typeof(Tool).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";
}
