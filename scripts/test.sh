#!/usr/bin/env bash
# The test command (and CI's): install what is missing, build the solution, run every xunit test,
# publish the NativeAOT CLI (failing on any trim/AOT warning), run each published binary this CPU
# can run on the tv-mini fixture against PyTorch's logits, and rerun the CLI tests against the
# native launcher. Exits non-zero on any failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ALEXNET_ROOT"

alexnet_step "setup"
bash scripts/setup.sh

alexnet_step "build"
dotnet build AlexNet.Aot.sln -c Release -nologo

alexnet_step "test"
dotnet test AlexNet.Aot.sln -c Release --no-build --nologo --logger "console;verbosity=normal"

bash scripts/publish.sh

fixtures=$(alexnet_fixtures)
work="$ALEXNET_ROOT/artifacts/test"
mkdir -p "$work"
launcher="$ALEXNET_ROOT/artifacts/alexnet/alexnet"

alexnet_step "end to end: NativeAOT alexnet on tv-mini against PyTorch"
"$launcher" make-input --rule fixture --shape 4x3x224x224 --output "$work/tv-mini.input.f32"
best=$("$launcher" info --json | sed -n 's/.*"compiledFor": "\(.*\)".*/\1/p')
echo "this CPU runs $best"
# Every level at or below the best one runs here: each must take its own ISA path and match PyTorch.
run_level=false
for level in x86-64-v4 x86-64-v3 x86-64-v2 armv8-a; do
    [ "$level" = "$best" ] && run_level=true
    $run_level || continue
    bin="$ALEXNET_ROOT/artifacts/alexnet/$level/alexnet"
    [ -x "$bin" ] || continue
    case "$level" in
        x86-64-v4) want=avx512 ;;
        x86-64-v3) want=avx2 ;;
        x86-64-v2) want=sse ;;
        *) want=neon ;;
    esac
    path=$("$bin" info --json | sed -n 's/.*"path": "\(.*\)".*/\1/p')
    if [ "$path" != "$want" ]; then
        echo "FAIL: $bin takes ISA path '$path', expected '$want'" >&2
        exit 1
    fi
    alexnet_step "$level ($path)"
    "$bin" run --model tv-mini --weights "$fixtures/tv-mini/tv-mini.safetensors" \
        --input "$work/tv-mini.input.f32" --batch 4 --output "$work/tv-mini.$level.logits.f32" --logits
    "$bin" compare --model tv-mini --weights "$fixtures/tv-mini/tv-mini.safetensors" \
        --input "$work/tv-mini.input.f32" --batch 4 \
        --oracle "$fixtures/tv-mini/tv-mini.oracle.safetensors" --tensor logits_eval --tolerance 1e-4
done

alexnet_step "end to end: the CLI tests against the NativeAOT launcher"
ALEXNET_CLI="$launcher" dotnet test tests/AlexNet.Aot.Tests/AlexNet.Aot.Tests.csproj -c Release --no-build --nologo \
    --filter "FullyQualifiedName~AlexNet.Aot.Tests.CliTests" --logger "console;verbosity=minimal"

echo
echo "test.sh: all steps passed"
