using System;
using System.IO;
using System.Text.Json;
using AlexNet.Aot.Imaging;
using AlexNet.Aot.Models;
using Xunit;

namespace AlexNet.Aot.Tests;

/// <summary>
/// As a new user would: a real photo (scikit-image's Chelsea the cat) through <c>alexnet classify</c> with a checkpoint
/// in torchvision's names for the full-size alexnet-torchvision model, written by the test (the hash-rule weights:
/// no real ImageNet weights are available offline, so the classes are not meaningful, the pipeline is).
/// The test command also runs this class against the NativeAOT launcher.
/// </summary>
public sealed class NewUserTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("alexnet-newuser-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Photo => Path.Combine(AppContext.BaseDirectory, "assets", "chelsea.png");

    [Fact]
    public void A_photo_goes_through_classify_with_a_torchvision_checkpoint()
    {
        ModelInfo model = ModelCatalog.Find("alexnet-torchvision")!.Info;
        string weights = Path.Combine(_dir, "alexnet-torchvision.safetensors");
        WeightsExport.ToSafeTensors(model, new GeneratedWeights(model), weights);
        Assert.True(new FileInfo(weights).Length > 200_000_000, "a full-size checkpoint");

        CliResult r = Cli.Run("classify", "--model", "alexnet-torchvision", "--weights", weights, "--json", Photo);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using JsonDocument doc = JsonDocument.Parse(r.Stdout);
        JsonElement result = doc.RootElement[0];
        Assert.EndsWith("chelsea.png", result.GetProperty("input").GetString());
        JsonElement top = result.GetProperty("top");
        Assert.Equal(5, top.GetArrayLength());
        double previous = 1, sum = 0;
        foreach (JsonElement t in top.EnumerateArray())
        {
            int index = t.GetProperty("index").GetInt32();
            double p = t.GetProperty("probability").GetDouble();
            Assert.InRange(index, 0, 999);
            Assert.Equal(ImageNetLabels.Name(index), t.GetProperty("label").GetString());
            Assert.True(p <= previous && p >= 0, "top-5 sorted by probability");
            previous = p;
            sum += p;
        }
        Assert.True(sum <= 1.0001);

        // A real photo: decoded at its own size.
        PlanarImage image = ImageLoader.Load(Photo, channels: 3);
        Assert.Equal(451, image.Width);
        Assert.Equal(300, image.Height);
    }
}
