#!/usr/bin/env bash
# The long soak: N forward passes of the full AlexNet (alexnet-torchvision, batch 1, generated weights) and M training
# steps of alexnet-fmnist (batch 128, Fashion-MNIST, a checkpoint every 500 steps), side by side in two processes, each
# sampling its resident memory, managed heap, open descriptors and threads (`alexnet soak`, a hidden command).
#   bash bench/soak.sh                 # 100,000 passes and 10,000 steps (the committed run: bench/results/hardening/)
#   bash bench/soak.sh 2000 50         # a short one
# Environment: ALEXNET_CLI (the alexnet binary or alexnet.dll to run; default the Release JIT build, built here),
# SOAK_OUT (output folder; default bench/results/hardening), SOAK_THREADS (threads per process; default 1, as the
# two processes share the machine), SOAK_NICE (nice level; default 15), SOAK_EXTRA (more soak options for both, e.g.
# --collect). Each writes soak-MODE.csv as it goes, soak-MODE.png, and soak-MODE.log with the summary; a run stopped
# early keeps its samples: `alexnet soak ... --replot` (the same options) draws its plot and summary.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
forward=${1:-100000}
steps=${2:-10000}
out=${SOAK_OUT:-$root/bench/results/hardening}
threads=${SOAK_THREADS:-1}
niceness=${SOAK_NICE:-15}
mkdir -p "$out"

cli=${ALEXNET_CLI:-}
if [ -z "$cli" ]; then
    dotnet build apps/alexnet -c Release -nologo -v q
    cli="$root/apps/alexnet/bin/Release/net10.0/alexnet.dll"
fi
run=("$cli")
case "$cli" in *.dll) run=(dotnet "$cli") ;; esac

nice -n "$niceness" "${run[@]}" soak --model alexnet-torchvision --mode forward --iterations "$forward" --batch 1 \
    --threads "$threads" --every $((forward >= 200 ? forward / 200 : 1)) --csv "$out/soak-forward.csv" ${SOAK_EXTRA:-} > "$out/soak-forward.log" 2>&1 &
fpid=$!
nice -n "$niceness" "${run[@]}" soak --model alexnet-fmnist --mode train --iterations "$steps" --batch 128 --data fashion-mnist \
    --threads "$threads" --every $((steps >= 200 ? steps / 200 : 1)) --checkpoint "$out/.soak-checkpoint.safetensors" --checkpoint-every 500 \
    --csv "$out/soak-train.csv" ${SOAK_EXTRA:-} > "$out/soak-train.log" 2>&1 &
tpid=$!
status=0
wait "$fpid" || status=$?
wait "$tpid" || status=$?
rm -f "$out/.soak-checkpoint.safetensors"
tail -n 8 "$out/soak-forward.log" "$out/soak-train.log"
exit "$status"
