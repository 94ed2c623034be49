#!/usr/bin/env bash
# Crash-safe training, the long version of the CI test tests/AlexNet.Aot.Tests/Hardening/KillResumeTests.cs:
# `alexnet train` is killed with SIGKILL (kill -9) at N seeded random moments (start-up, mid-step, during the write of
# a checkpoint, the metrics or the plot, anywhere); after each kill every file of the output folder must be absent or
# whole (checkpoints pass their SHA-256 checksum), the next `--resume` must start at the last checkpoint's position,
# and the finished run must be byte-identical to an uninterrupted one.
#   bash scripts/kill-test.sh            # 20 kills of a 4-epoch run of 480 images (240 steps)
#   bash scripts/kill-test.sh 50         # 50 kills
# Environment: KILL_TEST_EPOCHS (4), KILL_TEST_LIMIT (480 images), KILL_TEST_SEED, KILL_TEST_REPORT (the Markdown
# report; default bench/results/hardening/kill-resume.md), ALEXNET_CLI (the CLI to kill: the NativeAOT launcher, say;
# default the Release JIT build).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ALEXNET_ROOT"
kills=${1:-20}
report=${KILL_TEST_REPORT:-$ALEXNET_ROOT/bench/results/hardening/kill-resume.md}
mkdir -p "$(dirname "$report")"
body=$(mktemp)
trap 'rm -f "$body"' EXIT

alexnet_step "build"
dotnet build tests/AlexNet.Aot.Tests/AlexNet.Aot.Tests.csproj -c Release -nologo -v q

alexnet_step "kill test: $kills kills"
started=$SECONDS
ALEXNET_KILL_TEST_KILLS=$kills ALEXNET_KILL_TEST_EPOCHS=${KILL_TEST_EPOCHS:-4} ALEXNET_KILL_TEST_LIMIT=${KILL_TEST_LIMIT:-480} \
ALEXNET_KILL_TEST_SEED=${KILL_TEST_SEED:-20261126} ALEXNET_KILL_TEST_REPORT="$body" \
    dotnet test tests/AlexNet.Aot.Tests/AlexNet.Aot.Tests.csproj -c Release --no-build --nologo \
    --filter "FullyQualifiedName~AlexNet.Aot.Tests.Hardening.KillResumeTests" --logger "console;verbosity=normal"

{
    echo "# Crash-safe training: kill -9 and resume"
    echo
    echo "- date: $(date -u +%Y-%m-%d)"
    echo "- command: \`bash scripts/kill-test.sh $kills\` (epochs ${KILL_TEST_EPOCHS:-4}, images ${KILL_TEST_LIMIT:-480}); passed in $((SECONDS - started)) s"
    if [ -n "${ALEXNET_CLI:-}" ]; then
        echo "- CLI under test: ${ALEXNET_CLI#"$ALEXNET_ROOT"/} (ALEXNET_CLI)"
    else
        echo "- CLI under test: the Release JIT build, apps/alexnet/bin/Release/net10.0/alexnet.dll"
    fi
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    cat "$body"
} > "$report"
echo "kill-test.sh: passed; $report"
