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
