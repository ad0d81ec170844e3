// ML.NET 5 keeps the model-persistence API (ModelSaveContext writers, ModelLoadContext, VersionInfo, LoadableClass)
// internal. This assembly is compiled against publicized copies of Microsoft.ML.Core/Data (see the csproj) and the
// runtime skips access checks into the assemblies named here. Microsoft.ML is pinned to [5.0.1, 6.0).
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Core")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Data")]

namespace System.Runtime.CompilerServices
{
    /// <summary>Honoured by CoreCLR (not by the C# compiler): lets this assembly use internals of the named assembly.</summary>
    [AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
    internal sealed class IgnoresAccessChecksToAttribute : Attribute
    {
        public IgnoresAccessChecksToAttribute(string assemblyName) => AssemblyName = assemblyName;

        public string AssemblyName { get; }
    }
}
