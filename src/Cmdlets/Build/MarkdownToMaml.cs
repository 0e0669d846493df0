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

        var parameters = new XElement(Command + "parameters");
        foreach (Match p in Regex.Matches(Section(page, "PARAMETERS"), "^### -(\\w+)\\s*\\n(.*?)```yaml\\n(.*?)```", RegexOptions.Singleline | RegexOptions.Multiline))
        {
            Dictionary<string, string> yaml = p.Groups[3].Value.Split('\n')
                .Select(l => l.Split(new[] { ':' }, 2)).Where(kv => kv.Length == 2)
                .ToDictionary(kv => kv[0].Trim(), kv => kv[1].Trim());
            string Get(string key) => yaml.TryGetValue(key, out string v) ? v : "";
            string type = Get("Type");
            parameters.Add(new XElement(Command + "parameter",
                new XAttribute("required", Get("Required").StartsWith("True", StringComparison.Ordinal) ? "true" : "false"),
                new XAttribute("variableLength", type.EndsWith("[]", StringComparison.Ordinal) ? "true" : "false"),
                new XAttribute("globbing", Get("Accept wildcard characters").ToLowerInvariant()),
                new XAttribute("pipelineInput", Get("Accept pipeline input")),
                new XAttribute("position", Get("Position").ToLowerInvariant() == "named" ? "named" : Get("Position")),
                new XAttribute("aliases", Get("Aliases").Length == 0 ? "none" : Get("Aliases")),
                new XElement(Maml + "name", p.Groups[1].Value),
                new XElement(Maml + "description", Paras(p.Groups[2].Value)),
                new XElement(Command + "parameterValue", new XAttribute("required", "true"), new XAttribute("variableLength", "false"), type),
                new XElement(Dev + "type", new XElement(Maml + "name", type)),
                new XElement(Dev + "defaultValue", Get("Default value"))));
        }

        command.Add(parameters);

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

        return command;
    }
}
