#!/usr/bin/env bash
# The C ABI end to end: publishes libalexnet.so (NativeAOT, NativeLib=Shared), compiles the C sample
# (tests/c/alexnet_sample.c) with gcc against include/alexnet.h, and runs it on the tv-mini fixture:
# logits against REFERENCE.f32, error statuses, and two sessions on two threads at once. On x64 with the
# arm64 cross toolchain (scripts/setup.sh --arm64), the same for linux-arm64: libalexnet.so cross-compiled
# as scripts/publish.sh does the CLI, the sample compiled with aarch64-linux-gnu-gcc, both run under
# qemu-aarch64-static against the same x64 reference (so arm64 equals x64 within the sample's 1e-4).
#   scripts/test-clib.sh INPUT.f32 REFERENCE.f32
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ALEXNET_ROOT"
input=$1
reference=$2
out="$ALEXNET_ROOT/artifacts/libalexnet"
logs="$ALEXNET_ROOT/artifacts/logs"
mkdir -p "$out" "$logs"

alexnet_step "libalexnet.so (NativeAOT shared library, x86-64-v3)"
dotnet publish apps/libalexnet/libalexnet.csproj -c Release -r linux-x64 -nologo -o "$out" 2>&1 | tee "$logs/publish-libalexnet.log"
if grep -E 'warning IL[23][0-9]{3}' "$logs/publish-libalexnet.log"; then
    echo "FAIL: trim/AOT warnings in the libalexnet publish" >&2
    exit 1
fi
gcc -O2 -Wall -Wextra -Werror -I apps/libalexnet/include tests/c/alexnet_sample.c \
    -L "$out" -lalexnet -lpthread -lm -Wl,-rpath,'$ORIGIN' -o "$out/alexnet_sample"

alexnet_step "the C sample against libalexnet.so"
"$out/alexnet_sample" "$(alexnet_fixtures)/tv-mini/tv-mini.safetensors" "$input" "$reference"

if [ "$(uname -m)" = x86_64 ] && command -v clang-14 >/dev/null 2>&1 && command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 \
    && command -v qemu-aarch64-static >/dev/null 2>&1; then
    out_arm64="$ALEXNET_ROOT/artifacts/libalexnet-arm64"
    mkdir -p "$out_arm64"
    alexnet_step "libalexnet.so for linux-arm64 (NativeAOT shared library, armv8-a: NEON), cross-compiled"
    dotnet publish apps/libalexnet/libalexnet.csproj -c Release -r linux-arm64 -nologo -p:IlcInstructionSet=armv8-a \
        -p:CppCompilerAndLinker=clang-14 -p:ObjCopyName=aarch64-linux-gnu-objcopy -o "$out_arm64" 2>&1 \
        | tee "$logs/publish-libalexnet-arm64.log"
    if grep -E 'warning IL[23][0-9]{3}' "$logs/publish-libalexnet-arm64.log"; then
        echo "FAIL: trim/AOT warnings in the linux-arm64 libalexnet publish" >&2
        exit 1
    fi
    aarch64-linux-gnu-gcc -O2 -Wall -Wextra -Werror -I apps/libalexnet/include tests/c/alexnet_sample.c \
        -L "$out_arm64" -lalexnet -lpthread -lm -Wl,-rpath,'$ORIGIN' -o "$out_arm64/alexnet_sample"
    alexnet_step "the C sample against the linux-arm64 libalexnet.so, under qemu-aarch64-static"
    qemu-aarch64-static -L /usr/aarch64-linux-gnu "$out_arm64/alexnet_sample" \
        "$(alexnet_fixtures)/tv-mini/tv-mini.safetensors" "$input" "$reference"
else
    echo "test-clib: no arm64 cross toolchain or qemu here (scripts/setup.sh --arm64 installs them); arm64 C sample skipped"
fi
