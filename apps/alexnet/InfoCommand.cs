using System;
using System.IO;
using System.Text;
using System.Text.Json;
using AlexNet.Aot.Imaging;
using AlexNet.Aot.Models;

namespace AlexNet.Aot.Cli;

/// <summary><c>alexnet info</c>: the compiled-in models, one model's layers, and the ISA path in use.</summary>
internal static class InfoCommand
{
    public static readonly CommandSpec Spec = new(
        Name: "info",
        Synopsis: "info [--model NAME] [--json]",
        Summary: "List the compiled-in models, or describe one layer by layer; show the ISA path in use.",
        Details:
            "  --model NAME   describe one model: each layer's kind, operations, output shape, the weight tensors\n" +
            "                 it loads (checkpoint key and shape), multiply-adds, the arena bytes for batch 1, and\n" +
            "                 the preprocessing classify gives photos by default\n" +
            "  --json         write JSON instead of text\n",
        ValueOptions: new[] { "--model" },
        Flags: new[] { "--json" },
        AllowsPositionals: false,
        Run: Run);

    private static int Run(ArgReader args)
    {
        string? name = args.Optional("--model");
        ModelEntry[] models;
        if (name is null)
        {
            models = new ModelEntry[ModelCatalog.All.Count];
            for (int i = 0; i < models.Length; i++) models[i] = ModelCatalog.All[i];
        }
        else
        {
            models = new[] { ModelCommon.FindModel(name) };
        }

        if (args.Flag("--json"))
            WriteJson(models, withLayers: name is not null);
        else if (name is null)
            WriteList(models);
        else
            WriteModel(models[0].Info);
        return ExitCodes.Ok;
    }

    private static long Parameters(ModelInfo m)
    {
        long n = 0;
        foreach (LayerInfo l in m.Layers) n += l.ParameterCount;
        return n;
    }

    private static long MultiplyAdds(ModelInfo m)
    {
        long n = 0;
        foreach (LayerInfo l in m.Layers) n += l.MultiplyAdds;
        return n;
    }

    private static void WriteList(ModelEntry[] models)
    {
        var sb = new StringBuilder();
        sb.Append("ISA path: ").Append(BuildInfo.Summary).Append("\n\n");
        sb.Append($"{"MODEL",-22} {"INPUT",-11} {"CLASSES",7} {"PARAMETERS",14} {"MULTIPLY-ADDS",15}\n");
        foreach (ModelEntry e in models)
        {
            ModelInfo m = e.Info;
            sb.Append($"{m.Name,-22} {ModelCommon.ShapeText(m.InputShape),-11} {m.Classes,7} {ModelCommon.Count(Parameters(m)),14} {ModelCommon.Count(MultiplyAdds(m)),15}\n");
        }
        Console.Out.Write(sb.ToString());
    }

    private static void WriteModel(ModelInfo m)
    {
        var sb = new StringBuilder();
        sb.Append("model ").Append(m.Name).Append(" (").Append(m.SpecFile).Append(")\n");
        sb.Append("input ").Append(ModelCommon.ShapeText(m.InputShape)).Append(", ").Append(m.Classes).Append(" classes, output ")
          .Append(m.HasSoftmax ? "probabilities (softmax; --logits for raw scores)" : "logits").Append('\n');
        sb.Append("photos preprocessed ").Append(PreprocessText(m)).Append(m.Preprocess.Length > 0 ? " (the spec's preprocess line)" : "").Append('\n');
        sb.Append("parameters ").Append(ModelCommon.Count(Parameters(m)))
          .Append(", multiply-adds per image ").Append(ModelCommon.Count(MultiplyAdds(m)))
          .Append(", arena bytes (batch 1) ").Append(ModelCommon.Count(m.ArenaBytes(1))).Append('\n');
        sb.Append("ISA path: ").Append(BuildInfo.Summary).Append("\n\n");

        sb.Append($"{"LAYER",-8} {"KIND",-6} {"OUTPUT",-12} {"MULTIPLY-ADDS",15}  OPERATIONS\n");
        foreach (LayerInfo l in m.Layers)
        {
            sb.Append($"{l.Name,-8} {l.Kind,-6} {ModelCommon.ShapeText(l.OutputShape),-12} {ModelCommon.Count(l.MultiplyAdds),15}  {string.Join(", ", l.Operations)}{(l.Winograd ? " [Winograd]" : "")}\n");
            foreach (ParameterInfo p in l.Parameters)
                sb.Append("         ").Append(p.Key).Append(' ').Append(p.ShapeText).Append(p.Optional ? " (optional)" : "").Append('\n');
        }
        Console.Out.Write(sb.ToString());
    }

    private static void WriteJson(ModelEntry[] models, bool withLayers)
    {
        Console.Out.Flush();
        using Stream stdout = Console.OpenStandardOutput();
        using (var w = new Utf8JsonWriter(stdout, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartObject("isa");
            w.WriteString("path", BuildInfo.IsaPath);
            w.WriteString("description", BuildInfo.IsaDescription);
            w.WriteNumber("vectorFloats", Isa.VectorFloats);
            w.WriteString("runtime", BuildInfo.Runtime);
            w.WriteString("compiledFor", BuildInfo.CompiledFor);
            w.WriteEndObject();

            w.WriteStartArray("models");
            foreach (ModelEntry e in models)
            {
                ModelInfo m = e.Info;
                w.WriteStartObject();
                w.WriteString("name", m.Name);
                w.WriteString("spec", m.SpecFile);
                WriteInts(w, "input", m.InputShape);
                w.WriteNumber("classes", m.Classes);
                w.WriteBoolean("softmax", m.HasSoftmax);
                w.WriteNumber("parameters", Parameters(m));
                w.WriteNumber("multiplyAdds", MultiplyAdds(m));
                w.WriteNumber("arenaBytes", m.ArenaBytes(1));
                w.WriteString("preprocess", PreprocessText(m));
                if (withLayers)
                {
                    w.WriteStartArray("layers");
                    foreach (LayerInfo l in m.Layers)
                    {
                        w.WriteStartObject();
                        w.WriteString("name", l.Name);
                        w.WriteString("kind", l.Kind);
                        w.WriteStartArray("operations");
                        foreach (string op in l.Operations) w.WriteStringValue(op);
                        w.WriteEndArray();
                        WriteInts(w, "output", l.OutputShape);
                        w.WriteNumber("multiplyAdds", l.MultiplyAdds);
                        if (l.Kind == "conv") w.WriteString("algorithm", l.Winograd ? "winograd" : "direct");
                        w.WriteNumber("parameterCount", l.ParameterCount);
                        w.WriteNumber("specLine", l.SpecLine);
                        w.WriteStartArray("parameters");
                        foreach (ParameterInfo p in l.Parameters)
                        {
                            w.WriteStartObject();
                            w.WriteString("key", p.Key);
                            WriteInts(w, "shape", p.Shape);
                            if (p.Optional) w.WriteBoolean("optional", true);
                            w.WriteEndObject();
                        }
                        w.WriteEndArray();
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        stdout.Write("\n"u8);
    }

    /// <summary>The photo preprocessing <c>classify</c> uses by default: <c>torchvision</c>, <c>caffe</c> or <c>none</c>.</summary>
    private static string PreprocessText(ModelInfo m) => Preprocess.DefaultFor(m) switch
    {
        PreprocessMode.Torchvision => "torchvision",
        PreprocessMode.Caffe => "caffe",
        _ => "none",
    };

    private static void WriteInts(Utf8JsonWriter w, string name, int[] values)
    {
        w.WriteStartArray(name);
        foreach (int v in values) w.WriteNumberValue(v);
        w.WriteEndArray();
    }
}
