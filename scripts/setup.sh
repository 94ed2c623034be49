#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine with only the .NET SDK needs to build, test and
# publish the NativeAOT CLI: a C toolchain for the NativeAOT linker (clang, or gcc if present),
# libc6-dev, binutils (objcopy) and zlib1g-dev. Idempotent and non-interactive; runs as root and
# calls apt-get (update included) only when something is missing.
set -euo pipefail

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
    for pkg in zlib1g-dev libc6-dev binutils; do
        installed "$pkg" || missing+=("$pkg")
    done
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: nothing to install ($(command -v clang || command -v gcc), zlib1g-dev present)"
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
