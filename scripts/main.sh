#!/usr/bin/env bash
# The main job: on a fresh machine, install what is missing, publish the native classifier, and run
# the bundled PyTorch fixture (tv-mini) through it, printing its top-5 beside PyTorch's.
# (Until the trained default model exists, the fixture is the demonstration.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

alexnet_step "setup"
bash "$ALEXNET_ROOT/scripts/setup.sh"

bash "$ALEXNET_ROOT/scripts/publish.sh"

fixtures=$(alexnet_fixtures)
alexnet="$ALEXNET_ROOT/artifacts/alexnet/alexnet"
work="$ALEXNET_ROOT/artifacts/main"
mkdir -p "$work"

alexnet_step "alexnet info"
"$alexnet" info

alexnet_step "tv-mini: the fixture batch (4 images, the rule of $fixtures/README.md) through the native binary"
"$alexnet" make-input --rule fixture --shape 4x3x224x224 --output "$work/tv-mini.input.f32"
"$alexnet" run --model tv-mini --weights "$fixtures/tv-mini/tv-mini.safetensors" \
    --input "$work/tv-mini.input.f32" --batch 4 --output "$work/tv-mini.logits.f32" --logits
echo "wrote $work/tv-mini.logits.f32 ([4, 10] float32 logits)"

alexnet_step "tv-mini: ours against PyTorch (logits_eval of tv-mini.oracle.safetensors)"
"$alexnet" compare --model tv-mini --weights "$fixtures/tv-mini/tv-mini.safetensors" \
    --input "$work/tv-mini.input.f32" --batch 4 \
    --oracle "$fixtures/tv-mini/tv-mini.oracle.safetensors" --tensor logits_eval
