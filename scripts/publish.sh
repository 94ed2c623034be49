#!/usr/bin/env bash
# Publishes the CLI with NativeAOT into artifacts/alexnet/:
#   LEVEL/alexnet   one native binary per instruction-set level (x86-64-v4, x86-64-v3, x86-64-v2)
#   alexnet         a launcher that runs the highest level this CPU supports
# NativeAOT fixes the instruction sets at compile time, hence one binary per level (see
# apps/alexnet/alexnet.csproj). ALEXNET_LEVELS="x86-64-v4" publishes fewer levels. Fails on any
# trim or AOT warning (IL2xxx/IL3xxx), besides the warnings-as-errors of Directory.Build.props.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "$(uname -m)" in
    x86_64) rid=linux-x64; default_levels="x86-64-v4 x86-64-v3 x86-64-v2" ;;
    aarch64) rid=linux-arm64; default_levels="armv8-a" ;;
    *) echo "publish: no NativeAOT target for $(uname -m)" >&2; exit 1 ;;
esac
levels=${ALEXNET_LEVELS:-$default_levels}

out="$ALEXNET_ROOT/artifacts/alexnet"
logs="$ALEXNET_ROOT/artifacts/logs"
mkdir -p "$out" "$logs"

for level in $levels; do
    alexnet_step "publish alexnet for $rid $level"
    staging="$ALEXNET_ROOT/artifacts/obj/publish/$level"
    log="$logs/publish-$level.log"
    rm -rf "$staging"
    if ! dotnet publish "$ALEXNET_ROOT/apps/alexnet/alexnet.csproj" -c Release -r "$rid" \
            -p:IlcInstructionSet="$level" -o "$staging" -nologo 2>&1 | tee "$log"; then
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
    echo "published $out/$level/alexnet"
done

install -m 755 "$ALEXNET_ROOT/apps/alexnet/alexnet.sh" "$out/alexnet"
echo "launcher  $out/alexnet"
