#!/usr/bin/env bash
# The test command (and CI's): install what is missing (the arm64 cross toolchain and qemu
# included), build the solution, run every xunit test, publish the NativeAOT CLI for each x64
# level and for linux-arm64 (failing on any trim/AOT warning), run each x64 binary this CPU can run
# on the three PyTorch fixtures (tv-mini, paper-mini, bn-mini) against PyTorch's logits, run the
# arm64 binary under qemu-user (NEON path) against PyTorch's logits and the x64 ones, and rerun the
# CLI tests against the native launcher. Exits non-zero on any failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ALEXNET_ROOT"

alexnet_step "setup"
bash scripts/setup.sh --arm64

alexnet_step "build"
dotnet build AlexNet.Aot.sln -c Release -nologo

alexnet_step "test"
mkdir -p "$ALEXNET_ROOT/artifacts/logs"
test_log="$ALEXNET_ROOT/artifacts/logs/dotnet-test.log"
dotnet test AlexNet.Aot.sln -c Release --no-build --nologo --logger "console;verbosity=normal" | tee "$test_log"

bash scripts/publish.sh --arm64

fixtures=$(alexnet_fixtures)
work="$ALEXNET_ROOT/artifacts/test"
mkdir -p "$work"
launcher="$ALEXNET_ROOT/artifacts/alexnet/alexnet"

models="tv-mini paper-mini bn-mini"
tolerance=1e-4
within_tolerance() { awk -v d="$1" -v t="$tolerance" 'BEGIN { exit !(d + 0 <= t + 0) }'; }

alexnet_step "end to end: NativeAOT alexnet on $models against PyTorch"
for model in $models; do
    "$launcher" make-input --rule fixture --shape "$(alexnet_fixture_shape "$model")" --output "$work/$model.input.f32"
done
best=$("$launcher" info --json | sed -n 's/.*"compiledFor": "\(.*\)".*/\1/p')
echo "this CPU runs $best"
# Every x64 level at or below the best one runs here: each must take its own ISA path and match
# PyTorch. (armv8-a is the arm64 binary: it runs below, under qemu where this is not arm64.)
run_level=false
for level in x86-64-v4 x86-64-v3 x86-64-v2; do
    [ "$level" = "$best" ] && run_level=true
    $run_level || continue
    bin="$ALEXNET_ROOT/artifacts/alexnet/$level/alexnet"
    [ -x "$bin" ] || continue
    case "$level" in
        x86-64-v4) want=avx512 ;;
        x86-64-v3) want=avx2 ;;
        *) want=sse ;;
    esac
    path=$("$bin" info --json | sed -n 's/.*"path": "\(.*\)".*/\1/p')
    if [ "$path" != "$want" ]; then
        echo "FAIL: $bin takes ISA path '$path', expected '$want'" >&2
        exit 1
    fi
    for model in $models; do
        alexnet_step "$level ($path): $model"
        "$bin" run --model "$model" --weights "$fixtures/$model/$model.safetensors" \
            --input "$work/$model.input.f32" --batch 4 --output "$work/$model.$level.logits.f32" --logits
        "$bin" compare --model "$model" --weights "$fixtures/$model/$model.safetensors" \
            --input "$work/$model.input.f32" --batch 4 \
            --oracle "$fixtures/$model/$model.oracle.safetensors" --tensor logits_eval --tolerance "$tolerance"
        # The training kernels on this level: two SGD steps against PyTorch's gradients and weights.
        "$bin" compare --train --labels 0,3,6,9 --model "$model" --weights "$fixtures/$model/$model.safetensors" \
            --input "$work/$model.input.f32" --batch 4 --oracle "$fixtures/$model/$model.oracle.safetensors"
    done
done

# The linux-arm64 binary (armv8-a: AdvSimd, the NEON path): under qemu-user unless this is arm64.
# Its logits must match PyTorch's and those of the best x64 level above, each within 1e-4.
arm64_bin="$ALEXNET_ROOT/artifacts/alexnet/armv8-a/alexnet"
arm64_run=()
if [ "$(uname -m)" != aarch64 ]; then
    arm64_run=(qemu-aarch64-static -L /usr/aarch64-linux-gnu)
fi
alexnet_step "armv8-a (linux-arm64, NEON) ${arm64_run[*]:+under ${arm64_run[*]}}"
arm64_started=$SECONDS
path=$("${arm64_run[@]}" "$arm64_bin" info --json | sed -n 's/.*"path": "\(.*\)".*/\1/p')
if [ "$path" != neon ]; then
    echo "FAIL: $arm64_bin takes ISA path '$path', expected 'neon'" >&2
    exit 1
fi
echo "$arm64_bin takes ISA path $path"
x64_logits_level=""
case "$best" in x86-64-*) x64_logits_level=$best ;; esac
for model in $models; do
    alexnet_step "armv8-a (neon): $model"
    "${arm64_run[@]}" "$arm64_bin" run --model "$model" --weights "$fixtures/$model/$model.safetensors" \
        --input "$work/$model.input.f32" --batch 4 --output "$work/$model.armv8-a.logits.f32" --logits
    "${arm64_run[@]}" "$arm64_bin" compare --model "$model" --weights "$fixtures/$model/$model.safetensors" \
        --input "$work/$model.input.f32" --batch 4 \
        --oracle "$fixtures/$model/$model.oracle.safetensors" --tensor logits_eval --tolerance "$tolerance"
    "${arm64_run[@]}" "$arm64_bin" compare --train --labels 0,3,6,9 --model "$model" --weights "$fixtures/$model/$model.safetensors" \
        --input "$work/$model.input.f32" --batch 4 --oracle "$fixtures/$model/$model.oracle.safetensors"
    if [ -n "$x64_logits_level" ]; then
        diff=$(alexnet_max_abs_diff "$work/$model.armv8-a.logits.f32" "$work/$model.$x64_logits_level.logits.f32")
        if within_tolerance "$diff"; then verdict=OK; else verdict="TOO LARGE"; fi
        echo "max |arm64 - x64 ($x64_logits_level)| over the logits: $diff (tolerance $tolerance): $verdict"
        if [ "$verdict" != OK ]; then
            echo "FAIL: $model: arm64 logits differ from the $x64_logits_level ones by $diff" >&2
            exit 1
        fi
    fi
done
echo "arm64 runs took $((SECONDS - arm64_started)) s"

# The C ABI: libalexnet.so and a C program using it (its reference: the best x64 level's logits, checked above).
if [ "$(uname -m)" = x86_64 ]; then
    bash scripts/test-clib.sh "$work/tv-mini.input.f32" "$work/tv-mini.$best.logits.f32"
fi

bash scripts/test-package.sh

alexnet_step "end to end: the CLI tests against the NativeAOT launcher"
cli_log="$ALEXNET_ROOT/artifacts/logs/dotnet-test-native-cli.log"
ALEXNET_CLI="$launcher" dotnet test tests/AlexNet.Aot.Tests/AlexNet.Aot.Tests.csproj -c Release --no-build --nologo \
    --filter "FullyQualifiedName~AlexNet.Aot.Tests.CliTests|FullyQualifiedName~AlexNet.Aot.Tests.ImagingTests|FullyQualifiedName~AlexNet.Aot.Tests.NewUserTests" --logger "console;verbosity=minimal" | tee "$cli_log"

echo
echo "test.sh: all steps passed"
# One closing line for every xunit run above (the solution's, then the CLI's against the NativeAOT launcher).
awk '/^ +Passed: [0-9]+$/ {p += $2} /^ +Failed: [0-9]+$/ {f += $2} /Passed!  - Failed: +[0-9]+, Passed: +[0-9]+/ {gsub(",", ""); f += $4; p += $6} END {printf "tests: %d passed, %d failed\n", p, f}' "$test_log" "$cli_log"
