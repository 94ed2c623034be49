#!/usr/bin/env bash
# Publishes the CLI with NativeAOT into artifacts/alexnet/:
#   LEVEL/alexnet   one native binary per instruction-set level (x86-64-v4, x86-64-v3, x86-64-v2)
#   LEVEL/libSkiaSharp.so  SkiaSharp's native library beside each binary (JPEG/PNG decoding)
#   alexnet         a launcher that runs the highest level this CPU supports
#   weights/        the bundled weights (model-spec/weights/*.safetensors: the trained alexnet-fmnist)
# NativeAOT fixes the instruction sets at compile time, hence one binary per level (see
# apps/alexnet/alexnet.csproj). ALEXNET_LEVELS="x86-64-v4" publishes fewer levels. Fails on any
# trim or AOT warning (IL2xxx/IL3xxx), besides the warnings-as-errors of Directory.Build.props.
#
#   scripts/publish.sh           this machine's levels (x86-64-v4 v3 v2 on x64; armv8-a on arm64)
#   scripts/publish.sh --arm64   also armv8-a/alexnet for linux-arm64 (NEON), cross-compiled on x64
#                                (needs `scripts/setup.sh --arm64`); scripts/test.sh runs it under
#                                qemu-aarch64-static. ALEXNET_LEVELS may name armv8-a too.
# The cross publish is, from the repository root:
#   dotnet publish apps/alexnet/alexnet.csproj -c Release -r linux-arm64 -p:IlcInstructionSet=armv8-a \
#       -p:CppCompilerAndLinker=clang-14 -p:ObjCopyName=aarch64-linux-gnu-objcopy -o DIR
# ILCompiler adds --target=aarch64-linux-gnu to the link itself (the RID differs from the host's);
# clang-14 then finds Debian's cross sysroot (/usr/aarch64-linux-gnu, /usr/lib/gcc-cross) and
# aarch64-linux-gnu-ld on its own, so no SysRoot is given (--sysroot=/usr/aarch64-linux-gnu would
# hide /usr/lib/gcc-cross and its crtbegin.o). armv8-a includes AdvSimd: Isa.Path is "neon".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

arm64=0
for arg in "$@"; do
    case "$arg" in
        --arm64) arm64=1 ;;
        *) echo "publish: unknown argument '$arg' (known: --arm64)" >&2; exit 2 ;;
    esac
done

host=$(uname -m)
case "$host" in
    x86_64) default_levels="x86-64-v4 x86-64-v3 x86-64-v2" ;;
    aarch64) default_levels="armv8-a" ;;
    *) echo "publish: no NativeAOT target for $host" >&2; exit 1 ;;
esac
levels=${ALEXNET_LEVELS:-$default_levels}
if [ "$arm64" = 1 ]; then
    case " $levels " in *" armv8-a "*) ;; *) levels="$levels armv8-a" ;; esac
fi

out="$ALEXNET_ROOT/artifacts/alexnet"
logs="$ALEXNET_ROOT/artifacts/logs"
mkdir -p "$out" "$logs"

for level in $levels; do
    extra=()
    case "$level" in
        x86-64*) rid=linux-x64; arch=x86_64 ;;
        armv8*|armv9*) rid=linux-arm64; arch=aarch64 ;;
        *) echo "publish: unknown level '$level' (x86-64-v4, x86-64-v3, x86-64-v2, armv8-a)" >&2; exit 2 ;;
    esac
    if [ "$arch" != "$host" ]; then
        if [ "$arch" != aarch64 ] || [ "$host" != x86_64 ]; then
            echo "publish: cannot cross-compile $level ($rid) on $host" >&2
            exit 1
        fi
        for tool in clang-14 aarch64-linux-gnu-objcopy aarch64-linux-gnu-ld; do
            if ! command -v "$tool" >/dev/null 2>&1; then
                echo "publish: $tool not found; run scripts/setup.sh --arm64 (as root) first" >&2
                exit 1
            fi
        done
        extra=(-p:CppCompilerAndLinker=clang-14 -p:ObjCopyName=aarch64-linux-gnu-objcopy)
    fi
    alexnet_step "publish alexnet for $rid $level"
    staging="$ALEXNET_ROOT/artifacts/obj/publish/$level"
    log="$logs/publish-$level.log"
    rm -rf "$staging"
    started=$SECONDS
    if ! dotnet publish "$ALEXNET_ROOT/apps/alexnet/alexnet.csproj" -c Release -r "$rid" \
            -p:IlcInstructionSet="$level" "${extra[@]}" -o "$staging" -nologo 2>&1 | tee "$log"; then
        echo "publish: dotnet publish failed for $level (log: $log)" >&2
        exit 1
    fi
    if grep -E 'warning IL[23][0-9]{3}' "$log" >/dev/null; then
        echo "publish: trim/AOT warnings for $level:" >&2
        grep -E 'warning IL[23][0-9]{3}' "$log" | sort -u >&2
        exit 1
    fi
    mkdir -p "$out/$level"
    install -m 755 "$staging/alexnet" "$out/$level/alexnet"
    # SkiaSharp's native library (JPEG/PNG decoding; from SkiaSharp.NativeAssets.Linux.NoDependencies, which needs
    # only glibc and libstdc++, no fontconfig) is loaded at run time from beside the binary: each LEVEL folder gets it.
    shopt -s nullglob
    # The package ships it with its symbol table; --strip-unneeded drops that (2.4 MB) and keeps the dynamic symbols
    # the binary binds to, which brings the binary and the library under 15 MB together (bench/results/footprint.md).
    strip_tool=strip
    [ "$arch" = aarch64 ] && [ "$host" != aarch64 ] && strip_tool=aarch64-linux-gnu-strip
    for lib in "$staging"/*.so; do
        install -m 644 "$lib" "$out/$level/$(basename "$lib")"
        if command -v "$strip_tool" >/dev/null 2>&1; then
            "$strip_tool" --strip-unneeded "$out/$level/$(basename "$lib")"
        fi
    done
    shopt -u nullglob
    if [ ! -f "$out/$level/libSkiaSharp.so" ]; then
        echo "publish: libSkiaSharp.so missing from $staging (photos could not be decoded)" >&2
        exit 1
    fi
    echo "published $out/$level/alexnet ($rid, $((SECONDS - started)) s)"
done

install -m 755 "$ALEXNET_ROOT/apps/alexnet/alexnet.sh" "$out/alexnet"
echo "launcher  $out/alexnet"

# The bundled weights (the trained alexnet-fmnist default), found by the binaries in weights/ beside the launcher.
mkdir -p "$out/weights"
for w in "$ALEXNET_ROOT"/model-spec/weights/*.safetensors; do
    [ -f "$w" ] && install -m 644 "$w" "$out/weights/$(basename "$w")"
done
echo "weights   $out/weights ($(ls "$out/weights" | wc -l) file(s))"
