#!/usr/bin/env bash
# Runs the benchmarks and copies their reports into bench/results/ with this machine's description.
#   bash bench/run.sh                  # whole network beside ONNX Runtime (NetworkBenchmarks), then per layer
#   bash bench/run.sh '*Network*'      # a BenchmarkDotNet filter
# Also records `alexnet bench` tables (per-layer % of the FMA peak measured at start) for both layouts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
filter="${1:-*}"
results="$root/bench/results"
mkdir -p "$results"

{
    echo "# Machine"
    echo
    echo "- date: $(date -u +%Y-%m-%d)"
    echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- cores: $(nproc), memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "- flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'avx512f|avx2|fma|avx512_bf16' | sort -u | tr '\n' ' ')"
    echo "- .NET: $(dotnet --version)"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (this machine is shared: compare ratios within one run)"
} > "$results/machine.md"

dotnet run -c Release --project bench/AlexNet.Aot.Bench -- --filter "$filter" --join --exporters github \
    --launchCount 1 --warmupCount 3 --iterationCount 15 --artifacts "$root/bench/BenchmarkDotNet.Artifacts"
latest=$(ls -t "$root"/bench/BenchmarkDotNet.Artifacts/results/*-report-github.md 2>/dev/null | head -n 1)
[ -n "$latest" ] && cp "$latest" "$results/benchmarkdotnet-latest.md"

dotnet build apps/alexnet -c Release -nologo -v q
for model in alexnet-torchvision alexnet-2012; do
    for batch in 1 64; do
        for precision in fp32 bf16; do
            dotnet apps/alexnet/bin/Release/net10.0/alexnet.dll bench --model "$model" --batch "$batch" --threads 2 \
                --precision "$precision" --iterations $([ "$batch" = 1 ] && echo 40 || echo 6) \
                --json "$results/alexnet-bench-$model-b$batch-$precision.json" | tee "$results/alexnet-bench-$model-b$batch-$precision.txt"
        done
    done
done
