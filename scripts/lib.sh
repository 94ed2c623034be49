# Shared by the scripts: sourced, not run.

# The repository root (the folder above scripts/).
ALEXNET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Prints the PyTorch fixtures folder (the one holding tv-mini/): $ALEXNET_FIXTURES (that folder or
# one above it), else ../shared/fixtures/torch beside the repository (the repo is cloned as
# DIR/main with DIR/shared beside it), else shared/fixtures/torch inside it.
alexnet_fixtures() {
    local c
    if [ -n "${ALEXNET_FIXTURES:-}" ]; then
        for c in "$ALEXNET_FIXTURES" "$ALEXNET_FIXTURES/torch" "$ALEXNET_FIXTURES/fixtures/torch" "$ALEXNET_FIXTURES/shared/fixtures/torch"; do
            if [ -d "$c/tv-mini" ]; then (cd "$c" && pwd); return 0; fi
        done
        echo "ALEXNET_FIXTURES=$ALEXNET_FIXTURES: no torch fixtures (tv-mini/) there" >&2
        return 1
    fi
    for c in "$ALEXNET_ROOT/../shared/fixtures/torch" "$ALEXNET_ROOT/shared/fixtures/torch"; do
        if [ -d "$c/tv-mini" ]; then (cd "$c" && pwd); return 0; fi
    done
    echo "no PyTorch fixtures at $ALEXNET_ROOT/../shared/fixtures/torch; set ALEXNET_FIXTURES" >&2
    return 1
}

# Prints a step heading.
alexnet_step() {
    printf '\n==> %s\n' "$*"
}

# The input shape of a PyTorch fixture's batch (4 images; paper-mini is 227x227, the others 224x224).
alexnet_fixture_shape() {
    case "$1" in
        paper-mini) echo 4x3x227x227 ;;
        *) echo 4x3x224x224 ;;
    esac
}

# alexnet_max_abs_diff A.f32 B.f32: prints the largest |a - b| over two raw float32 files (the
# output of `alexnet run --logits`, same byte order). Fails when their sizes differ, when either is
# empty, or on a NaN or infinity. Needs only od and awk.
alexnet_max_abs_diff() {
    local a=$1 b=$2
    if [ ! -s "$a" ] || [ ! -s "$b" ] || [ "$(wc -c <"$a")" -ne "$(wc -c <"$b")" ]; then
        echo "alexnet_max_abs_diff: $a and $b are empty or differ in size" >&2
        return 1
    fi
    paste -d' ' <(od -An -v -f -w4 "$a") <(od -An -v -f -w4 "$b") | awk '
        tolower($0) ~ /nan|inf/ { bad = 1 }
        { d = $1 - $2; if (d < 0) d = -d; if (d > max) max = d }
        END {
            if (bad) { print "alexnet_max_abs_diff: NaN or infinity in " A " or " B > "/dev/stderr"; exit 1 }
            printf "%.2e\n", max
        }' A="$a" B="$b"
}
