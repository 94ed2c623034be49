#!/usr/bin/env bash
# Inference times on 2 pinned cores of a larger machine: one or two NativeAOT alexnet binaries (`alexnet bench`,
# generated weights) beside ONNX Runtime (bench/onnxruntime/inference.py), in rounds. Needs python3 with torch,
# torchvision and onnxruntime, and taskset. With two binaries (before and after a change, labelled a and b) they
# alternate case by case, so that both see the same machine.
#   bash bench/pinned-inference.sh OUT_DIR ALEXNET_BINARY [ALEXNET_BINARY_2]
set -euo pipefail
out="${1:?usage: pinned-inference.sh OUT_DIR ALEXNET_BINARY [ALEXNET_BINARY_2]}"
shift
bins=("$@")
[ "${#bins[@]}" -ge 1 ] || { echo "usage: pinned-inference.sh OUT_DIR ALEXNET_BINARY [ALEXNET_BINARY_2]" >&2; exit 2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$out"
cores="${PIN_CORES:-0,1}"
rounds="${ROUNDS:-2}"
{
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; pinned to $cores"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

ours() { # binary label model batch precision iterations round
    local base="$out/$2-$3-b$4-$5-r$7"
    taskset -c "$cores" "$1" bench --model "$3" --batch "$4" --threads 2 --precision "$5" --iterations "$6" --json "$base.json" > "$base.txt"
    sed -n "s/^total: /$2 $3 batch $4 $5: /p" "$base.txt"
}

labels=(a b)
for round in $(seq 1 "$rounds"); do
    for model in alexnet-torchvision alexnet-2012; do
        for c in "1 fp32 40" "1 bf16 40" "64 fp32 6"; do
            read -r batch precision iterations <<< "$c"
            for i in "${!bins[@]}"; do
                ours "${bins[$i]}" "${labels[$i]}" "$model" "$batch" "$precision" "$iterations" "$round"
            done
        done
    done
    taskset -c "$cores" python3 "$root/bench/onnxruntime/inference.py" --threads 2 --iterations 40
done 2>&1 | tee "$out/results.txt"
