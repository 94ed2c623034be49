using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using AlexNet.Aot.Imaging;
using AlexNet.Aot.Onnx;
using AlexNet.Aot.Pytorch;
using AlexNet.Aot.Training;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests.Fuzz;

/// <summary>
/// Fuzzing of every reader of outside input (safetensors, .pth zip and legacy, ONNX, IDX, images, key-mapping files):
/// each input must load, or fail with the reader's one documented exception whose message starts with the file's path,
/// within <see cref="Fuzzer.Limit"/>. A short run here (<see cref="CiIterations"/> inputs per reader, or
/// <c>ALEXNET_FUZZ_ITERATIONS</c>); <c>scripts/fuzz.sh</c> runs 100,000 per reader. Inputs that once failed are kept
/// in <c>fuzz-regressions/READER/</c> and replayed by <see cref="RegressionsStillPass"/>.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class ReaderFuzzTests(ITestOutputHelper output)
{
    /// <summary>Inputs per reader in the test run (about 1 s per reader on an idle two-core machine).</summary>
    public const int CiIterations = 1000;

    // ------------------------------------------------------------------ what a loaded file must hold

    private static void CheckWeights(IWeightSource w)
    {
        foreach (string key in w.Keys)
        {
            if (!w.TryGet(key, out LoadedTensor t))
                throw new FuzzInvariantException($"key {key} is listed but cannot be fetched");
            long count = 1;
            foreach (int d in t.Shape)
            {
                if (d < 0) throw new FuzzInvariantException($"{key}: negative dimension in [{string.Join(", ", t.Shape)}]");
                count *= d;
            }
            bool isFloat = t.DType is "F32" or "F16" or "BF16" or "F64";
            if (isFloat ? t.Data.Length != count : t.Data.Length != 0)
                throw new FuzzInvariantException($"{key}: {t.DType} [{string.Join(", ", t.Shape)}] holds {t.Data.Length} values");
        }
    }

    private static bool Is<T>(Exception e, string path) where T : Exception => e is T && Fuzzer.NamesFile(e.Message, path);

    private static ModelInfo Spec(string name) =>
        (AlexNet.Aot.Tests.Specs.ModelCatalog.Find(name) ?? AlexNet.Aot.Models.ModelCatalog.Find(name) ?? throw new InvalidOperationException(name + " is not compiled in")).Info;

    // ------------------------------------------------------------------ the targets

    private static readonly Lazy<FuzzTarget> s_safetensors = new(() => new FuzzTarget
    {
        Name = "safetensors",
        Extension = "safetensors",
        Seeds = FuzzSeeds.SafeTensorsSeeds(),
        Dictionary = FuzzSeeds.SafeTensorsDictionary,
        Variants = 4,
        Load = (path, variant) => CheckWeights(variant switch
        {
            0 => SafeTensorsFile.Load(path, memoryMap: true),
            1 => WeightsFile.Load(path),
            2 => SafeTensorsFile.Load(path, memoryMap: false),
            _ => SafeTensorsFile.Parse(File.ReadAllBytes(path), path),
        }),
        IsClearError = Is<WeightsException>,
    });

    private static readonly Lazy<FuzzTarget> s_pthZip = new(() => new FuzzTarget
    {
        Name = "pth-zip",
        Extension = "pth",
        Seeds = FuzzSeeds.PthZipSeeds(),
        Dictionary = FuzzSeeds.PickleDictionary.Concat(new[] { "PK\x03\x04", "PK\x01\x02", "PK\x05\x06", "PK\x06\x06", "PK\x06\x07", "data.pkl", "little", "big" }
            .Select(s => s.Select(c => (byte)c).ToArray())).ToArray(),
        Variants = 2,
        Load = (path, variant) => CheckWeights(variant == 0 ? PthFile.Load(path) : WeightsFile.Load(path)),
        IsClearError = Is<WeightsException>,
    });

    private static readonly Lazy<FuzzTarget> s_pthLegacy = new(() => new FuzzTarget
    {
        Name = "pth-legacy",
        Extension = "pth",
        Seeds = FuzzSeeds.PthLegacySeeds(),
        Dictionary = FuzzSeeds.PickleDictionary,
        Variants = 2,
        Load = (path, variant) => CheckWeights(variant == 0 ? PthFile.Load(path) : WeightsFile.Load(path)),
        IsClearError = Is<WeightsException>,
    });

    private static readonly string[] s_onnxModels = { "lrn-strong", "odd-bn", "tv-mini" };

    private static readonly Lazy<FuzzTarget> s_onnx = new(() =>
    {
        ModelInfo[] models = s_onnxModels.Select(Spec).ToArray();
        string torch = Fixtures.Path("tv-mini", "tv-mini.onnx");
        return new FuzzTarget
        {
            Name = "onnx",
            Extension = "onnx",
            Seeds = FuzzSeeds.OnnxSeeds(models.Take(2).ToArray(), File.ReadAllBytes(torch)),
            Dictionary = FuzzSeeds.OnnxDictionary,
            // 0: initializers under their own names; 1 to 3: bound to a model (one through WeightsFile's detection).
            Variants = 4,
            Load = (path, variant) => CheckWeights(variant switch
            {
                0 => OnnxModelFile.Load(path),
                1 => WeightsFile.Load(path, models[0]),
                2 => OnnxModelFile.Load(path, models[1]),
                _ => OnnxModelFile.Load(path, models[2]),
            }),
            // The reader turns a stray IndexOutOfRange or the like into a WeightsException "malformed ONNX file: <the
            // runtime's message>" (defence in depth); the fuzzer counts that as a failure: each error must be said.
            IsClearError = (e, path) => Is<WeightsException>(e, path) && e.InnerException is null or IOException,
        };
    });

    private static readonly Lazy<FuzzTarget> s_idx = new(() => new FuzzTarget
    {
        Name = "idx",
        Extension = "idx",
        Seeds = FuzzSeeds.IdxSeeds(),
        Dictionary = FuzzSeeds.IdxDictionary,
        Variants = 2,
        Load = (path, variant) =>
        {
            if (variant == 0)
            {
                IdxImages images = IdxFile.ReadImages(path);
                if ((long)images.Count * images.Rows * images.Columns != images.Pixels.Length || images.Count <= 0)
                    throw new FuzzInvariantException($"{images.Count} images of {images.Rows}x{images.Columns} in {images.Pixels.Length} bytes");
            }
            else
            {
                byte[] labels = IdxFile.ReadLabels(path);
                if (labels.Length == 0 || labels.Length > IdxFile.MaxItems)
                    throw new FuzzInvariantException($"{labels.Length} labels");
            }
        },
        IsClearError = Is<DatasetException>,
    });

    private static readonly Lazy<FuzzTarget> s_images = new(() => new FuzzTarget
    {
        Name = "images",
        Extension = "img",
        Seeds = FuzzSeeds.ImageSeeds(),
        Dictionary = FuzzSeeds.ImageDictionary,
        // 0: RGB; 1: luminance; 2: RGB, with BMP and WebP as training image folders take them.
        Variants = 3,
        Load = (path, variant) =>
        {
            PlanarImage image = variant switch
            {
                0 => ImageLoader.Load(path),
                1 => ImageLoader.Load(path, 1),
                _ => ImageLoader.Load(path, 3, otherFormats: true),
            };
            int channels = variant == 1 ? 1 : 3;
            if (image.Channels != channels || image.Width <= 0 || image.Height <= 0 || (long)image.Width * image.Height > ImageLoader.MaxPixels
                || image.Data.Length != (long)channels * image.Width * image.Height)
                throw new FuzzInvariantException($"a {image.Channels}x{image.Height}x{image.Width} image with {image.Data.Length} values");
            foreach (float v in image.Data)
                if (!(v >= 0f && v <= 1f)) throw new FuzzInvariantException($"a pixel value {v} outside [0, 1]");
        },
        IsClearError = Is<ImageException>,
    });

    private static readonly Lazy<FuzzTarget> s_keyMap = new(() => new FuzzTarget
    {
        Name = "keymap",
        Extension = "map",
        Seeds = FuzzSeeds.KeyMapSeeds(),
        Dictionary = FuzzSeeds.KeyMapDictionary,
        Load = (path, _) =>
        {
            KeyMap map = KeyMap.Load(path);
            foreach ((string model, string file) in map.Rules)
            {
                if (map.FileKey(model) != file || map.FileKey(model + ".weight") != file + ".weight")
                    throw new FuzzInvariantException($"rule {model} = {file} does not map {model}");
            }
        },
        IsClearError = Is<WeightsException>,
    });

    /// <summary>Every reader's target, by name.</summary>
    internal static IReadOnlyDictionary<string, Lazy<FuzzTarget>> Targets { get; } = new Dictionary<string, Lazy<FuzzTarget>>
    {
        ["safetensors"] = s_safetensors,
        ["pth-zip"] = s_pthZip,
        ["pth-legacy"] = s_pthLegacy,
        ["onnx"] = s_onnx,
        ["idx"] = s_idx,
        ["images"] = s_images,
        ["keymap"] = s_keyMap,
    };

    public static TheoryData<string> Readers() => new(Targets.Keys);

    [Theory]
    [MemberData(nameof(Readers))]
    public void ReaderSurvivesFuzzing(string reader)
    {
        int iterations = Fuzzer.Iterations(reader, CiIterations);
        if (iterations == 0) return;
        FuzzSummary s = Fuzzer.Run(Targets[reader].Value, iterations, output.WriteLine);
        Assert.Equal(0, s.Failures);
        // The inputs reach past the first checks: some load, most fail (mutations that keep a file valid are rare).
        Assert.True(s.Errors > 0, $"{reader}: no input failed to load; the mutations do nothing");
        Assert.True(s.Loaded > 0 || s.Inputs < 500, $"{reader}: no mutated input loaded; the mutations are too rough");
    }

    // ------------------------------------------------------------------ regressions

    /// <summary>The folder of saved inputs that once broke a reader, beside this project's sources.</summary>
    internal static string RegressionFolder(string reader)
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "tests", "AlexNet.Aot.Tests", "fuzz-regressions");
            if (Directory.Exists(candidate)) return Path.Combine(candidate, reader);
        }
        throw new InvalidOperationException("tests/AlexNet.Aot.Tests/fuzz-regressions not found above " + AppContext.BaseDirectory);
    }

    [Theory]
    [MemberData(nameof(Readers))]
    public void RegressionsStillPass(string reader)
    {
        int n = Fuzzer.Replay(Targets[reader].Value, RegressionFolder(reader));
        output.WriteLine($"{reader}: {n} saved inputs replayed");
    }
}
