// README snippets compile as written.
//
// Every ```csharp block of README.md is compiled with Roslyn and nothing is run. Compiler errors fail the test with the
// README line and column, the error and the README line's text; warnings are ignored. A block compiles as the
// Program.cs of a `dotnet new console` project: top-level statements, C# latest, nullable enabled, the SDK's implicit
// global usings (System, System.Collections.Generic, System.IO, System.Linq, System.Net.Http, System.Threading,
// System.Threading.Tasks), references to the .NET runtime and to the FlatMinima.*, Microsoft.ML*, TorchSharp*,
// SkiaSharp* and System.* assemblies next to this test (see ReferencedAssemblyPrefixes). So every other `using`, and
// every type a block uses but the libraries do not define (ModelInput, …), must be written in the README.
//
// Conventions, kept to two. An HTML comment on the line before the opening fence (blank lines between are allowed):
//   <!-- snippet: continues previous -->  compile this block after the previous compiled block (with whatever that one
//   <!-- snippet: continues #anchor -->   continues), or after the first compiled block under the heading with that
//                                         GitHub anchor (`## A pipeline` → #a-pipeline). The blocks are put together
//                                         as C# requires (all usings, then the statements in order, then the type
//                                         declarations), so this block may use the earlier block's variables, local
//                                         functions and types, and must not declare the same names again. Several
//                                         blocks may continue the same block; each is compiled with it separately.
//   <!-- snippet: skip -->                do not compile this block (pseudo code).
// Any other `<!-- snippet: … -->` comment, one that is not right before a csharp block, or one whose target does not
// exist fails the test.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Docs.Tests;

[TestClass]
public sealed class ReadmeSnippetTests
{
    private static readonly Lazy<SnippetCompiler> Compiler = new(() => new SnippetCompiler(SnippetCompiler.ReferencesNextToThisTest()));

    [TestMethod]
    public void EveryCSharpBlockOfTheReadmeCompiles()
    {
        string path = Path.Combine(RepoRoot(), "README.md");
        var snippets = MarkdownSnippets.Parse(File.ReadAllText(path), "README.md");
        Assert.IsTrue(snippets.Any(s => !s.Skip), "README.md has no compiled ```csharp block");

        var failures = new List<string>();
        foreach (var snippet in snippets.Where(s => !s.Skip))
        {
            var errors = Compiler.Value.Errors(snippet);
            if (errors.Count == 0) continue;
            string context = snippet.Continues is null ? "" : " (after the block at " + string.Join(", ", snippet.Chain.SkipLast(1).Select(c => "line " + c.FenceLine)) + ")";
            failures.Add($"block at README.md:{snippet.FenceLine}{context}: {errors.Count} error(s)\n  " + string.Join("\n  ", errors));
        }
        Assert.AreEqual(0, failures.Count, "README C# blocks that do not compile (line numbers are README.md's; conventions at the top of "
            + nameof(ReadmeSnippetTests) + ".cs):\n" + string.Join("\n", failures));
    }

    // The harness itself, on small markdown texts.

    [TestMethod]
    public void ErrorsAreReportedAtTheirMarkdownLine()
    {
        var snippets = MarkdownSnippets.Parse("# Title\n\ntext\n\n```csharp\nvar a = 1;\nvar b = a + undefinedName;\n```\n", "X.md");
        var errors = Compiler.Value.Errors(snippets.Single());
        Assert.AreEqual(1, errors.Count, string.Join("\n", errors));
        StringAssert.StartsWith(errors[0], "X.md:7:13: error CS0103:");
        StringAssert.Contains(errors[0], "var b = a + undefinedName;");
    }

    [TestMethod]
    public void ContinuedBlocksSeeTheEarlierBlockAndSkippedBlocksAreNotCompiled()
    {
        string markdown = string.Join("\n",
            "## First part", "```csharp", "using System.Text;", "var sb = new StringBuilder();", "record Pair(int A, int B);", "```", // 1-6
            "<!-- snippet: skip -->", "```csharp", "this is not C#", "```",                                                        // 7-10
            "<!-- snippet: continues previous -->", "", "```csharp", "using System.Text;", "sb.Append(new Pair(1, 2).B);",          // 11-15
            "Console.WriteLine(sb);", "sealed class Other { }", "```",                                                             // 16-18
            "## Elsewhere", "```cs", "public sealed class Alone { }", "```",                                                        // 19-22
            "<!-- snippet: continues #first-part -->", "```csharp", "var sb2 = sb.Append(undefinedName);", "```", "");             // 23-27
        var snippets = MarkdownSnippets.Parse(markdown, "X.md");
        CollectionAssert.AreEqual(new[] { 2, 8, 13, 20, 24 }, snippets.Select(s => s.FenceLine).ToArray());
        CollectionAssert.AreEqual(new[] { 2, 13 }, snippets[2].Chain.Select(s => s.FenceLine).ToArray());
        CollectionAssert.AreEqual(new[] { 2, 24 }, snippets[4].Chain.Select(s => s.FenceLine).ToArray());
        foreach (var snippet in snippets.Where(s => !s.Skip).Take(3))
            Assert.AreEqual(0, Compiler.Value.Errors(snippet).Count, string.Join("\n", Compiler.Value.Errors(snippet)));
        var errors = Compiler.Value.Errors(snippets[4]);
        Assert.AreEqual(1, errors.Count, string.Join("\n", errors));
        StringAssert.StartsWith(errors[0], "X.md:25:21: error CS0103:");
    }

    [TestMethod]
    public void UnknownStrayOrDanglingMarkersAreRejected()
    {
        void Rejected(string markdown, string where)
        {
            var e = Assert.ThrowsExactly<FormatException>(() => MarkdownSnippets.Parse(markdown, "X.md"));
            StringAssert.Contains(e.Message, where);
        }
        Rejected("<!-- snippet: continue -->\n```csharp\nvar a = 1;\n```\n", "X.md:1");
        Rejected("<!-- snippet: skip -->\ntext\n```csharp\nvar a = 1;\n```\n", "X.md:1");
        Rejected("<!-- snippet: continues previous -->\n```csharp\nvar a = 1;\n```\n", "X.md:2");
        Rejected("# A\n```csharp\nvar a = 1;\n```\n<!-- snippet: continues #b -->\n```csharp\nvar b = 1;\n```\n", "X.md:6");
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FlatMinima.MLNet.sln"))) return dir.FullName;
        throw new InvalidOperationException("repository root (FlatMinima.MLNet.sln) not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A ```csharp block: the 1-based line of its opening fence (its code starts on the next line), the GitHub
/// anchor of the heading it is under, whether it is skipped, and the block it continues.</summary>
public sealed record Snippet(string File, int FenceLine, string Code, string Heading, bool Skip, Snippet? Continues)
{
    public int FirstCodeLine => FenceLine + 1;

    /// <summary>The blocks compiled together for this one: what it continues, transitively, then itself.</summary>
    public IReadOnlyList<Snippet> Chain => Continues is null ? new[] { this } : Continues.Chain.Append(this).ToArray();
}

public static class MarkdownSnippets
{
    private static readonly Regex Fence = new(@"^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)", RegexOptions.Compiled);
    private static readonly Regex Heading = new(@"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", RegexOptions.Compiled);
    private static readonly Regex MarkerComment = new(@"^\s*<!--\s*snippet:\s*(.*?)\s*-->\s*$", RegexOptions.Compiled);
    private static readonly string[] CSharp = { "csharp", "cs", "c#" };

    /// <summary>The C# blocks of a markdown text with their markers resolved; throws <see cref="FormatException"/>
    /// (naming the line) on an unknown, stray or dangling marker.</summary>
    public static IReadOnlyList<Snippet> Parse(string markdown, string file)
    {
        var lines = markdown.Replace("\r\n", "\n").Split('\n');
        var snippets = new List<Snippet>();
        string heading = "";
        (int Line, string Text)? marker = null;
        FormatException Stray(int line) => new($"{file}:{line}: a snippet marker must come right before a ```csharp block.");
        for (int i = 0; i < lines.Length; i++)
        {
            var fence = Fence.Match(lines[i]);
            if (fence.Success)
            {
                string open = fence.Groups[1].Value;
                int close = i + 1;
                while (close < lines.Length && !IsClosingFence(lines[close], open)) close++;
                if (CSharp.Contains(fence.Groups[2].Value.ToLowerInvariant()))
                {
                    string code = string.Join("\n", lines[(i + 1)..Math.Min(close, lines.Length)]);
                    snippets.Add(Resolve(file, i + 1, code, heading, marker?.Text, snippets));
                }
                else if (marker is { } m) throw Stray(m.Line);
                marker = null;
                i = close;
            }
            else if (MarkerComment.Match(lines[i]) is { Success: true } comment)
            {
                if (marker is { } m) throw Stray(m.Line);
                string text = comment.Groups[1].Value;
                if (text != "skip" && !text.StartsWith("continues ", StringComparison.Ordinal))
                    throw new FormatException($"{file}:{i + 1}: unknown snippet marker '{text}' (known: 'skip', 'continues previous', 'continues #heading-anchor').");
                marker = (i + 1, text);
            }
            else if (lines[i].Trim().Length > 0)
            {
                if (marker is { } m) throw Stray(m.Line);
                if (Heading.Match(lines[i]) is { Success: true } h) heading = Anchor(h.Groups[1].Value);
            }
        }
        if (marker is { } last) throw Stray(last.Line);
        return snippets;
    }

    private static Snippet Resolve(string file, int fenceLine, string code, string heading, string? marker, IReadOnlyList<Snippet> earlier)
    {
        if (marker is null) return new Snippet(file, fenceLine, code, heading, false, null);
        if (marker == "skip") return new Snippet(file, fenceLine, code, heading, true, null);
        string target = marker["continues ".Length..].Trim();
        var compiled = earlier.Where(s => !s.Skip);
        Snippet? continues = target == "previous" ? compiled.LastOrDefault()
            : target.StartsWith('#') ? compiled.FirstOrDefault(s => s.Heading == target[1..])
            : throw new FormatException($"{file}:{fenceLine - 1}: 'continues' takes 'previous' or '#heading-anchor', not '{target}'.");
        return continues is null
            ? throw new FormatException($"{file}:{fenceLine}: this block continues '{target}', but no compiled C# block comes before it there.")
            : new Snippet(file, fenceLine, code, heading, false, continues);
    }

    /// <summary>GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.</summary>
    public static string Anchor(string heading) =>
        new string(heading.Trim().ToLowerInvariant().Where(c => char.IsLetterOrDigit(c) || c is ' ' or '-' or '_').ToArray()).Replace(' ', '-');

    private static bool IsClosingFence(string line, string open)
    {
        string trimmed = line.TrimStart(' ');
        if (line.Length - trimmed.Length > 3) return false;
        int run = trimmed.TakeWhile(c => c == open[0]).Count();
        return run >= open.Length && trimmed[run..].Trim().Length == 0;
    }
}

/// <summary>Compiles a block, after the blocks it continues, as one console program; errors carry the markdown's lines.</summary>
public sealed class SnippetCompiler
{
    /// <summary>Assembly names (prefixes) referenced besides the .NET runtime; add one when the README uses another library.</summary>
    public static readonly string[] ReferencedAssemblyPrefixes = { "FlatMinima.", "Microsoft.ML", "TorchSharp", "SkiaSharp", "System." };

    private const string ImplicitUsings = "global using global::System;\nglobal using global::System.Collections.Generic;\n"
        + "global using global::System.IO;\nglobal using global::System.Linq;\nglobal using global::System.Net.Http;\n"
        + "global using global::System.Threading;\nglobal using global::System.Threading.Tasks;\n";

    private static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);
    private readonly IReadOnlyList<MetadataReference> _references;

    public SnippetCompiler(IReadOnlyList<MetadataReference> references) => _references = references;

    /// <summary>The .NET runtime's assemblies, then those of <see cref="ReferencedAssemblyPrefixes"/> in this test's
    /// output folder whose names the runtime does not already have.</summary>
    public static IReadOnlyList<MetadataReference> ReferencesNextToThisTest()
    {
        string runtime = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var framework = Directory.GetFiles(runtime, "*.dll").Where(IsManaged).ToList();
        var names = framework.Select(Path.GetFileNameWithoutExtension).ToHashSet(StringComparer.OrdinalIgnoreCase);
        string self = typeof(SnippetCompiler).Assembly.GetName().Name!;
        var libraries = Directory.GetFiles(AppContext.BaseDirectory, "*.dll")
            .Where(f => Path.GetFileNameWithoutExtension(f) is var name && name != self && !names.Contains(name)
                        && ReferencedAssemblyPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal)))
            .Where(IsManaged);
        return framework.Concat(libraries).Select(f => (MetadataReference)MetadataReference.CreateFromFile(f)).ToList();
    }

    /// <summary>The compiler errors in <paramref name="snippet"/>'s own lines when it is compiled after the blocks it
    /// continues (their errors are theirs), as "file:line:column: error CSxxxx: message | the line's text".</summary>
    public IReadOnlyList<string> Errors(Snippet snippet)
    {
        var chain = snippet.Chain;
        var usings = new StringBuilder();
        var statements = new StringBuilder();
        var types = new StringBuilder();
        bool hasStatements = false;
        foreach (var part in chain)
        {
            // Split the block into its usings, its top-level statements and its type declarations, so that continued
            // blocks can be put together in the order C# requires; #line keeps the markdown's line numbers.
            var tree = CSharpSyntaxTree.ParseText(part.Code, ParseOptions);
            var root = tree.GetCompilationUnitRoot();
            int headerEnd = root.Usings.Concat<SyntaxNode>(root.Externs).Select(n => n.FullSpan.End).DefaultIfEmpty(0).Max();
            int typesStart = Math.Max(headerEnd, root.Members.FirstOrDefault(m => m is not GlobalStatementSyntax)?.FullSpan.Start ?? part.Code.Length);
            hasStatements |= root.Members.Any(m => m is GlobalStatementSyntax);
            Append(usings, part, tree, 0, headerEnd);
            Append(statements, part, tree, headerEnd, typesStart);
            Append(types, part, tree, typesStart, part.Code.Length);
        }

        var compilation = CSharpCompilation.Create(
            "Snippet",
            new[]
            {
                CSharpSyntaxTree.ParseText(ImplicitUsings, ParseOptions, path: "ImplicitUsings.g.cs"),
                CSharpSyntaxTree.ParseText(usings.ToString() + statements + types, ParseOptions, path: snippet.File + ".g.cs"),
            },
            _references,
            new CSharpCompilationOptions(hasStatements ? OutputKind.ConsoleApplication : OutputKind.DynamicallyLinkedLibrary,
                nullableContextOptions: NullableContextOptions.Enable));

        var codeLines = snippet.Code.Split('\n');
        int first = snippet.FirstCodeLine, last = snippet.FirstCodeLine + codeLines.Length - 1;
        var earlier = chain.SkipLast(1).Select(c => (First: c.FirstCodeLine, Last: c.FirstCodeLine + c.Code.Split('\n').Length - 1)).ToList();
        return compilation.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error)
            .Select(d => (Diagnostic: d, Span: d.Location.GetMappedLineSpan()))
            .Select(x => (x.Diagnostic, x.Span, Line: x.Span.StartLinePosition.Line + 1))
            // An error on an earlier block's line is reported by that block's own compilation.
            .Where(x => x.Span.Path != snippet.File || !earlier.Any(e => x.Line >= e.First && x.Line <= e.Last))
            .Select(x =>
            {
                string text = x.Span.Path == snippet.File && x.Line >= first && x.Line <= last ? " | " + codeLines[x.Line - first].Trim() : "";
                return $"{x.Span.Path}:{x.Line}:{x.Span.StartLinePosition.Character + 1}: error {x.Diagnostic.Id}: {x.Diagnostic.GetMessage()}{text}";
            })
            .Distinct()
            .ToList();
    }

    /// <summary>Appends code[start, end) under a #line directive naming its markdown line; the first line is indented to
    /// its column so that columns stay right too.</summary>
    private static void Append(StringBuilder target, Snippet snippet, SyntaxTree tree, int start, int end)
    {
        string text = snippet.Code[start..end];
        if (text.Trim().Length == 0) return;
        var position = tree.GetLineSpan(new Microsoft.CodeAnalysis.Text.TextSpan(start, 0)).StartLinePosition;
        target.Append("#line ").Append(snippet.FirstCodeLine + position.Line).Append(" \"").Append(snippet.File).Append("\"\n")
            .Append(' ', position.Character).Append(text);
        if (!text.EndsWith('\n')) target.Append('\n');
    }

    private static bool IsManaged(string path)
    {
        try
        {
            System.Reflection.AssemblyName.GetAssemblyName(path);
            return true;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }
}
