#!/usr/bin/env bash
# The main job: on a fresh machine, install what is missing (Fashion-MNIST included), publish the native
# classifier, classify the bundled Fashion-MNIST samples with the bundled default model (alexnet-fmnist,
# trained by `alexnet train`), measure it on the 10,000 test images, and run the bundled PyTorch fixture
# (tv-mini) through the binary beside PyTorch's own logits.
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

alexnet_step "alexnet-fmnist: the bundled Fashion-MNIST samples (samples/fashion-mnist, true class in each name)"
"$alexnet" classify --model alexnet-fmnist --top 3 "$ALEXNET_ROOT"/samples/fashion-mnist/*.png

alexnet_step "alexnet-fmnist: accuracy on the Fashion-MNIST test set (10,000 images)"
"$alexnet" eval --model alexnet-fmnist --data fashion-mnist

alexnet_step "tv-mini: the fixture batch (4 images, the rule of $fixtures/README.md) through the native binary"
"$alexnet" make-input --rule fixture --shape 4x3x224x224 --output "$work/tv-mini.input.f32"
"$alexnet" run --model tv-mini --weights "$fixtures/tv-mini/tv-mini.safetensors" \
    --input "$work/tv-mini.input.f32" --batch 4 --output "$work/tv-mini.logits.f32" --logits
echo "wrote $work/tv-mini.logits.f32 ([4, 10] float32 logits)"

alexnet_step "tv-mini: ours against PyTorch (logits_eval of tv-mini.oracle.safetensors)"
"$alexnet" compare --model tv-mini --weights "$fixtures/tv-mini/tv-mini.safetensors" \
    --input "$work/tv-mini.input.f32" --batch 4 \
    --oracle "$fixtures/tv-mini/tv-mini.oracle.safetensors" --tensor logits_eval
