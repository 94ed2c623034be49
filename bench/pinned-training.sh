#!/usr/bin/env bash
# Training step times on 2 pinned cores of a larger machine, ours (a NativeAOT alexnet, `alexnet soak --mode train`
# on random data, Winograd and direct convolutions) beside PyTorch's (bench/pytorch/training_step.py), alternating,
# twice. Needs python3 with torch and torchvision, and taskset.
#   [ROUNDS=2] bash bench/pinned-training.sh ALEXNET_BINARY [OUT_DIR]
set -euo pipefail
bin="${1:?usage: pinned-training.sh ALEXNET_BINARY [OUT_DIR]}"
out="${2:-pinned-training}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$out"
cores="${PIN_CORES:-0,1}"
{
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; pinned to $cores"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

ours() { # model batch conv iterations
    local csv="$out/soak-$1-$3.csv"
    rm -f "$csv"
    taskset -c "$cores" "$bin" soak --model "$1" --mode train --data random --batch "$2" --threads 2 --conv "$3" \
        --iterations "$4" --lr 0.001 --every 2 --warmup 4 --quiet --csv "$csv" --png "$out/soak-$1-$3.png" > /dev/null
    # Steady state: seconds from the warm-up sample to the last, per step.
    awk -F, -v m="$1" -v b="$2" -v c="$3" 'NR > 1 && $1 >= 4 { if (!s) { s = $2; i = $1 } e = $2; j = $1 }
        END { ms = (e - s) / (j - i) * 1000; printf "ours %s batch %d conv %s: %.1f ms per step (%.0f images/s)\n", m, b, c, ms, b / ms * 1000 }' "$csv"
}

for round in $(seq 1 "${ROUNDS:-2}"); do
    ours alexnet-fmnist 128 auto 24
    ours alexnet-fmnist 128 direct 24
    ours alexnet-torchvision 32 auto 14
    ours alexnet-torchvision 32 direct 14
    taskset -c "$cores" python3 "$root/bench/pytorch/training_step.py" --threads 2
done 2>&1 | tee "$out/results.txt"
