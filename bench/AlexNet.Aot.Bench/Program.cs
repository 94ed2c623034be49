using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

namespace AlexNet.Aot.Bench;

/// <summary>Runs the benchmarks: <c>dotnet run -c Release --project bench/AlexNet.Aot.Bench -- --filter '*'</c>.</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, DefaultConfig.Instance);
}
