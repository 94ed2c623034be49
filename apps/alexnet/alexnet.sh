#!/bin/sh
# Launcher installed as artifacts/alexnet/alexnet by scripts/publish.sh.
#
# NativeAOT fixes a binary's instruction sets when it is compiled (see alexnet.csproj), so we ship
# one binary per x86-64 level in LEVEL/alexnet beside this script and run the highest level this
# CPU supports: x86-64-v4 (AVX-512: Vector512), x86-64-v3 (AVX2+FMA: Vector256), x86-64-v2
# (SSE4.2: Vector128), and armv8-a (NEON: Vector128) on arm64. ALEXNET_LEVEL=x86-64-v3 (for example)
# picks a level by hand.
here=$(dirname "$(readlink -f "$0")")
level=${ALEXNET_LEVEL:-}
if [ -z "$level" ]; then
    flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
    has() {
        for f in "$@"; do
            case "$flags" in *" $f "*) ;; *) return 1 ;; esac
        done
    }
    if has avx512f avx512bw avx512cd avx512dq avx512vl avx2 fma bmi1 bmi2 movbe && [ -x "$here/x86-64-v4/alexnet" ]; then
        level=x86-64-v4
    elif has avx2 fma bmi1 bmi2 movbe f16c abm && [ -x "$here/x86-64-v3/alexnet" ]; then
        level=x86-64-v3
    elif [ -x "$here/x86-64-v2/alexnet" ]; then
        level=x86-64-v2
    elif [ "$(uname -m)" = aarch64 ] && [ -x "$here/armv8-a/alexnet" ]; then
        level=armv8-a
    fi
fi
if [ -z "$level" ] || [ ! -x "$here/$level/alexnet" ]; then
    echo "alexnet: no binary for level '${level:-?}' under $here (run scripts/publish.sh)" >&2
    exit 1
fi
exec "$here/$level/alexnet" "$@"
