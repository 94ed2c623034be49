using System;
using System.Linq;
using AlexNet.Aot.Models;
using AlexNet.Aot.Training;
using Xunit;

namespace AlexNet.Aot.Tests.Training;

/// <summary><see cref="Trainer.Profiling"/>: every operation's forward and backward time, without changing the results.</summary>
public sealed class TrainerProfileTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Profiling_times_every_operation_and_changes_nothing(int threads)
    {
        ModelInfo model = ModelCatalog.Find("paper-mini")!.Info;
        IWeightSource weights = SafeTensorsFile.Load(Fixtures.Path("paper-mini", "paper-mini.safetensors"));
        float[] input = FixtureInputs.Hash(4 * model.InputLength);
        int[] labels = { 0, 3, 6, 9 };
        using var plain = new Trainer(model, weights, new TrainerOptions { MaxBatch = 4, Threads = threads, Dropout = false });
        using var profiled = new Trainer(model, weights, new TrainerOptions { MaxBatch = 4, Threads = threads, Dropout = false }) { Profiling = true };
        for (int i = 0; i < 3; i++)
            Assert.Equal(plain.Step(input, labels, 4), profiled.Step(input, labels, 4));

        var rows = profiled.GetProfile();
        Assert.Contains(rows, r => r.Operation == "conv1.conv" && r.Pass == "forward");
        Assert.Contains(rows, r => r.Operation == "conv1.conv" && r.Pass == "backward");
        Assert.Contains(rows, r => r.Operation == "sgd");
        Assert.All(rows, r => Assert.True(r.Milliseconds >= 0));
        Assert.True(rows.Sum(r => r.Milliseconds) > 0);
        Assert.Equal(0, plain.GetProfile().Sum(r => r.Milliseconds));

        profiled.ResetProfile();
        Assert.Equal(0, profiled.GetProfile().Sum(r => r.Milliseconds));
    }
}
