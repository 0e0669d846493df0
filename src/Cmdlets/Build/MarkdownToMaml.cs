// An MSBuild task (compiled by RoslynCodeTaskFactory at build time, not part of Vmi.PowerShell.dll):
// turns the platyPS markdown in docs/cmdlets into the module's MAML help, so Get-Help works wherever the module
// goes (pwsh, the vmi shell) even where platyPS was never installed. build.ps1 -Task Help makes the same file
// with platyPS when it is there.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class VmiMarkdownToMaml : Task
{
    private static readonly XNamespace Msh = "http://msh";
    private static readonly XNamespace Maml = "http://schemas.microsoft.com/maml/2004/10";
    private static readonly XNamespace Command = "http://schemas.microsoft.com/maml/dev/command/2004/10";
    private static readonly XNamespace Dev = "http://schemas.microsoft.com/maml/dev/2004/10";

    [Required]
    public string DocsDirectory { get; set; } = "";

    [Required]
    public string OutputFile { get; set; } = "";

    public override bool Execute()
    {
        var root = new XElement(Msh + "helpItems", new XAttribute("schema", "maml"),
            new XAttribute(XNamespace.Xmlns + "maml", Maml), new XAttribute(XNamespace.Xmlns + "command", Command), new XAttribute(XNamespace.Xmlns + "dev", Dev));
        foreach (string file in Directory.GetFiles(DocsDirectory, "*-*.md").OrderBy(f => f, StringComparer.Ordinal))
        {
            root.Add(CommandHelp(File.ReadAllText(file).Replace("\r\n", "\n")));
        }

        Directory.CreateDirectory(Path.GetDirectoryName(OutputFile)!);
        string text = new XDocument(new XDeclaration("1.0", "utf-8", null), root).ToString();
        if (!File.Exists(OutputFile) || File.ReadAllText(OutputFile) != text)
        {
            File.WriteAllText(OutputFile, text);
        }

        return !Log.HasLoggedErrors;
    }

    private static string Section(string page, string name)
    {
        Match m = Regex.Match(page, "^## " + name + "\\s*\\n(.*?)(?=^## |\\z)", RegexOptions.Singleline | RegexOptions.Multiline);
        return m.Success ? m.Groups[1].Value.Trim() : "";
    }

    private static IEnumerable<XElement> Paras(string text) =>
        Regex.Split(text.Trim(), "\\n\\s*\\n").Where(p => p.Trim().Length > 0).Select(p => new XElement(Maml + "para", p.Trim().Replace("\n", " ")));

    private static XElement CommandHelp(string page)
    {
        string name = Regex.Match(page, "^# (\\S+)", RegexOptions.Multiline).Groups[1].Value;
        string[] verbNoun = name.Split('-');
        var command = new XElement(Command + "command",
            new XElement(Command + "details",
                new XElement(Command + "name", name),
                new XElement(Command + "verb", verbNoun[0]),
                new XElement(Command + "noun", verbNoun.Length > 1 ? verbNoun[1] : ""),
                new XElement(Maml + "description", Paras(Section(page, "SYNOPSIS")))),
            new XElement(Maml + "description", Paras(Section(page, "DESCRIPTION"))));

        // Each parameter: its text and one yaml block per group of parameter sets with the same facts (platyPS's layout).
        var documented = new List<(string Name, string Text, List<Dictionary<string, string>> Blocks)>();
        foreach (Match p in Regex.Matches(Section(page, "PARAMETERS"), "^### -(\\w+)\\s*\\n(.*?)(?=^### |\\z)", RegexOptions.Singleline | RegexOptions.Multiline))
        {
            string body = p.Groups[2].Value;
            int firstYaml = body.IndexOf("```yaml", StringComparison.Ordinal);
            var blocks = Regex.Matches(body, "```yaml\\n(.*?)```", RegexOptions.Singleline).Cast<Match>()
                .Select(y => y.Groups[1].Value.Split('\n').Select(l => l.Split(new[] { ':' }, 2)).Where(kv => kv.Length == 2)
                    .GroupBy(kv => kv[0].Trim()).ToDictionary(g => g.Key, g => g.First()[1].Trim()))
                .ToList();
            if (blocks.Count > 0)
            {
                documented.Add((p.Groups[1].Value, firstYaml >= 0 ? body.Substring(0, firstYaml) : body, blocks));
            }
        }

        // SYNTAX: one item per parameter set (### SetName, "(Default)" marks the default), with the parameters of that set.
        var syntax = new XElement(Command + "syntax");
        List<string> sets = Regex.Matches(Section(page, "SYNTAX"), "^### (\\S+)", RegexOptions.Multiline).Cast<Match>().Select(m => m.Groups[1].Value).ToList();
        foreach (string set in sets)
        {
            var item = new XElement(Command + "syntaxItem", new XElement(Maml + "name", name));
            IEnumerable<(string Name, string Text, Dictionary<string, string> Facts)> inSet = documented
                .Select(d => (d.Name, d.Text, Facts: d.Blocks.FirstOrDefault(b => InSet(b, set, sets.Count))))
                .Where(d => d.Facts is not null)
                .OrderBy(d => int.TryParse(Get(d.Facts, "Position"), out int pos) ? pos : int.MaxValue)
                .ThenBy(d => Get(d.Facts, "Required").StartsWith("True", StringComparison.Ordinal) ? 0 : 1);
            foreach ((string pName, string text, Dictionary<string, string> facts) in inSet)
            {
                item.Add(Parameter(pName, text, facts, inSyntax: true));
            }

            syntax.Add(item);
        }

        command.Add(syntax);
        command.Add(new XElement(Command + "parameters", documented.Select(d => Parameter(d.Name, d.Text, d.Blocks[0], inSyntax: false))));
        command.Add(new XElement(Command + "inputTypes", Types(Section(page, "INPUTS"), "inputType")));
        command.Add(new XElement(Command + "returnValues", Types(Section(page, "OUTPUTS"), "returnValue")));

        var examples = new XElement(Command + "examples");
        foreach (Match e in Regex.Matches(Section(page, "EXAMPLES"), "^### (.*?)\\n```powershell\\n(.*?)```(.*?)(?=^### |\\z)", RegexOptions.Singleline | RegexOptions.Multiline))
        {
            string rest = e.Groups[3].Value;
            Match output = Regex.Match(rest, "```output\\n(.*?)```", RegexOptions.Singleline);
            string remarks = Regex.Replace(rest, "```output\\n.*?```", "", RegexOptions.Singleline);
            var remarkParas = Paras(remarks).ToList();
            if (output.Success)
            {
                remarkParas.Insert(0, new XElement(Maml + "para", output.Groups[1].Value.TrimEnd()));
            }

            examples.Add(new XElement(Command + "example",
                new XElement(Maml + "title", "-------------------------- " + e.Groups[1].Value.Trim() + " --------------------------"),
                new XElement(Dev + "code", e.Groups[2].Value.TrimEnd()),
                new XElement(Dev + "remarks", remarkParas)));
        }

        command.Add(examples);
        string notes = Section(page, "NOTES");
        if (notes.Length > 0)
        {
            command.Add(new XElement(Maml + "alertSet", new XElement(Maml + "alert", Paras(notes))));
        }

        var links = new XElement(Command + "relatedLinks");
        foreach (Match l in Regex.Matches(Section(page, "RELATED LINKS"), "\\[([^\\]]+)\\]\\(([^)]*)\\)"))
        {
            // Links to sibling pages (Write-VmiMemory.md) name a command: Get-Help follows the name, not a file.
            string uri = l.Groups[2].Value.EndsWith(".md", StringComparison.OrdinalIgnoreCase) ? "" : l.Groups[2].Value;
            links.Add(new XElement(Maml + "navigationLink", new XElement(Maml + "linkText", l.Groups[1].Value), new XElement(Maml + "uri", uri)));
        }

        command.Add(links);
        return command;
    }

    private static string Get(Dictionary<string, string> yaml, string key) => yaml.TryGetValue(key, out string v) ? v : "";

    private static bool InSet(Dictionary<string, string> yaml, string set, int setCount)
    {
        string sets = Get(yaml, "Parameter Sets");
        return sets == "(All)" || setCount == 1 || sets.Split(',').Select(x => x.Trim()).Contains(set, StringComparer.Ordinal);
    }

    private static XElement Parameter(string name, string text, Dictionary<string, string> yaml, bool inSyntax)
    {
        string type = Get(yaml, "Type");
        string position = Get(yaml, "Position");
        var parameter = new XElement(Command + "parameter",
            new XAttribute("required", Get(yaml, "Required").StartsWith("True", StringComparison.Ordinal) ? "true" : "false"),
            new XAttribute("variableLength", type.EndsWith("[]", StringComparison.Ordinal) ? "true" : "false"),
            new XAttribute("globbing", Get(yaml, "Accept wildcard characters").ToLowerInvariant()),
            new XAttribute("pipelineInput", Get(yaml, "Accept pipeline input")),
            new XAttribute("position", position.Length == 0 || position.Equals("named", StringComparison.OrdinalIgnoreCase) ? "named" : position),
            new XAttribute("aliases", Get(yaml, "Aliases").Length == 0 ? "none" : Get(yaml, "Aliases")),
            new XElement(Maml + "name", name),
            new XElement(Maml + "description", Paras(text)));
        string accepted = Get(yaml, "Accepted values");
        if (inSyntax && accepted.Length > 0)
        {
            parameter.Add(new XElement(Command + "parameterValueGroup",
                accepted.Split(',').Select(v => new XElement(Command + "parameterValue", new XAttribute("required", "false"), new XAttribute("variableLength", "false"), v.Trim()))));
        }

        // A switch takes no value: the syntax shows [-ZeroFill], not [-ZeroFill <SwitchParameter>].
        if (!(inSyntax && type == "SwitchParameter"))
        {
            parameter.Add(new XElement(Command + "parameterValue", new XAttribute("required", type == "SwitchParameter" ? "false" : "true"),
                new XAttribute("variableLength", type.EndsWith("[]", StringComparison.Ordinal) ? "true" : "false"), type));
        }

        parameter.Add(new XElement(Dev + "type", new XElement(Maml + "name", type), new XElement(Maml + "uri")));
        parameter.Add(new XElement(Dev + "defaultValue", Get(yaml, "Default value")));
        return parameter;
    }

    /// <summary>INPUTS / OUTPUTS: each ### heading is a type (or a list of them), the text under it its description.</summary>
    private static IEnumerable<XElement> Types(string section, string element)
    {
        foreach (Match t in Regex.Matches(section, "^### ([^\\n]+?)[ \\t]*(?:\\n|\\z)(.*?)(?=^### |\\z)", RegexOptions.Singleline | RegexOptions.Multiline))
        {
            yield return new XElement(Command + element,
                new XElement(Dev + "type", new XElement(Maml + "name", t.Groups[1].Value.Trim()), new XElement(Maml + "uri")),
                new XElement(Maml + "description", Paras(t.Groups[2].Value)));
        }
    }
}
