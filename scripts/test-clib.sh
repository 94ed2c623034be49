#!/usr/bin/env bash
# The C ABI end to end: publishes libalexnet.so (NativeAOT, NativeLib=Shared), compiles the C sample
# (tests/c/alexnet_sample.c) with gcc against include/alexnet.h, and runs it on the tv-mini fixture:
# logits against REFERENCE.f32, error statuses, and two sessions on two threads at once.
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
