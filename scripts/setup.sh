#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine with only the .NET SDK needs to build, test and
# publish the NativeAOT CLI: a C toolchain for the NativeAOT linker (clang, or gcc if present),
# libc6-dev, binutils (objcopy) and zlib1g-dev; and the training data: dataset-fashion-mnist
# (Fashion-MNIST's four gzip-compressed IDX files in /usr/share/datasets/fashion-mnist, read by
# TrainingDataset.FashionMnist, the training tests and the main job). Idempotent and
# non-interactive; runs as root and calls apt-get (update included) only when something is missing.
#
#   scripts/setup.sh          the x64 (host) toolchain and Fashion-MNIST: what scripts/main.sh needs
#   scripts/setup.sh --arm64  also the linux-arm64 cross toolchain and qemu (scripts/test.sh):
#                             clang-14 (the NativeAOT linker for --target=aarch64-linux-gnu),
#                             gcc-aarch64-linux-gnu (aarch64-linux-gnu-objcopy and, with
#                             libc6-arm64-cross / libc6-dev-arm64-cross, the sysroot
#                             /usr/aarch64-linux-gnu with crt files, libgcc and libstdc++) and
#                             qemu-user-static (qemu-aarch64-static runs the binary; binfmt is
#                             not needed, scripts/test.sh calls qemu by name).
# ALEXNET_ARM64=1 has the same effect as --arm64.
set -euo pipefail

arm64=${ALEXNET_ARM64:-0}
for arg in "$@"; do
    case "$arg" in
        --arm64) arm64=1 ;;
        *) echo "setup: unknown argument '$arg' (known: --arm64)" >&2; exit 2 ;;
    esac
done

if ! command -v dotnet >/dev/null 2>&1; then
    echo "setup: the .NET SDK (dotnet) is not on PATH; install .NET SDK 10 first (see global.json)" >&2
    exit 1
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
if ! command -v clang >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
    missing+=(clang)
fi
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in zlib1g-dev libc6-dev binutils dataset-fashion-mnist; do
        installed "$pkg" || missing+=("$pkg")
    done
fi

if [ "$arm64" = 1 ]; then
    command -v clang-14 >/dev/null 2>&1 || missing+=(clang-14)
    command -v aarch64-linux-gnu-objcopy >/dev/null 2>&1 || missing+=(binutils-aarch64-linux-gnu)
    command -v qemu-aarch64-static >/dev/null 2>&1 || missing+=(qemu-user-static)
    # gcc-aarch64-linux-gnu brings libgcc-*-dev-arm64-cross (crtbegin.o, libgcc) into the
    # sysroot; libstdc++-*-dev-arm64-cross is not needed (NativeAOT links its own runtime).
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
    if command -v dpkg-query >/dev/null 2>&1; then
        for pkg in libc6-arm64-cross libc6-dev-arm64-cross; do
            installed "$pkg" || missing+=("$pkg")
        done
    fi
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: nothing to install ($(command -v clang || command -v gcc), zlib1g-dev and Fashion-MNIST present$([ "$arm64" = 1 ] && echo ', arm64 cross toolchain and qemu present'))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing ${missing[*]} and there is no apt-get; install them with this system's package manager" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo -n)
    else
        echo "setup: missing ${missing[*]}; run this script as root to install them" >&2
        exit 1
    fi
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
