#!/usr/bin/env bash
# The long fuzz run: every reader of outside input (the spec parser through the generator, safetensors, .pth zip
# and legacy, ONNX, IDX, images, key-mapping files) with ITERATIONS inputs each (default 100000), through the same
# CsCheck targets as the short run in the tests. Prints per reader: inputs tried, how many loaded, how many were
# clear errors (the reader's documented exception naming the file), failures, and the time; exits non-zero on any
# failure. A failing input is shrunk and saved under $ALEXNET_FUZZ_FAILURES/READER/ (default: the temp folder's
# alexnet-fuzz-failures/); see tests/AlexNet.Aot.Tests/fuzz-regressions/README.md.
#
#   bash scripts/fuzz.sh [ITERATIONS]
#
# Environment: ALEXNET_FUZZ_THREADS (threads per reader, default 2), ALEXNET_FUZZ_TIMEOUT_MS (per input, default
# 2000), ALEXNET_FUZZ_SEED (a CsCheck seed printed by a failing run, to reproduce it), ALEXNET_FUZZ_ITERATIONS_READER
# (one reader's count, e.g. ALEXNET_FUZZ_ITERATIONS_SPEC=20000; 0 skips it), ALEXNET_FUZZ_REPORT (a file to append
# the tab-separated figures to; default artifacts/fuzz/report.tsv, emptied first).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ALEXNET_ROOT"

iterations=${1:-100000}
mkdir -p artifacts/fuzz
report=${ALEXNET_FUZZ_REPORT:-$ALEXNET_ROOT/artifacts/fuzz/report.tsv}
: > "$report"
export ALEXNET_FUZZ_ITERATIONS=$iterations ALEXNET_FUZZ_REPORT=$report
export ALEXNET_FUZZ_THREADS=${ALEXNET_FUZZ_THREADS:-2}

alexnet_step "build"
dotnet build tests/AlexNet.Aot.Tests -c Release -nologo -v quiet
dotnet build tests/AlexNet.Aot.Generator.Tests -c Release -nologo -v quiet

status=0
started=$SECONDS
alexnet_step "readers: $iterations inputs each, $ALEXNET_FUZZ_THREADS threads"
dotnet test tests/AlexNet.Aot.Tests -c Release --no-build --nologo \
    --filter "FullyQualifiedName~AlexNet.Aot.Tests.Fuzz.ReaderFuzzTests" --logger "console;verbosity=normal" || status=1
alexnet_step "spec (through the generator): $iterations inputs"
dotnet test tests/AlexNet.Aot.Generator.Tests -c Release --no-build --nologo \
    --filter "FullyQualifiedName~AlexNet.Aot.Generator.Tests.SpecFuzzTests" --logger "console;verbosity=normal" || status=1

alexnet_step "figures ($((SECONDS - started)) s in all)"
{
    printf '| reader | inputs | loaded | clear errors | failures | time (s) | inputs/s |\n'
    printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
    awk -F'\t' '{ rate = $6 > 0 ? $2 / $6 : 0; printf "| %s | %d | %d | %d | %d | %.1f | %.0f |\n", $1, $2, $3, $4, $5, $6, rate }' "$report"
} | tee "${report%.tsv}.md"
if awk -F'\t' '$5 > 0 { bad = 1 } END { exit !bad }' "$report"; then status=1; fi
exit $status
