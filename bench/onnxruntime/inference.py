"""ONNX Runtime's CPU inference on the two ImageNet layouts, the peer of `alexnet bench` on a machine without .NET.

The models are built in PyTorch with the layouts of model-spec/alexnet-torchvision.model (torchvision's AlexNet,
224x224) and model-spec/alexnet-2012.model (227x227, groups=2, LRN), random weights, exported to ONNX (opset 17) and
run by ONNX Runtime with the given intra-op threads, sequential execution and every graph optimization. Prints one
line per case: the median and the fastest of the timed runs after a warm-up, in ms per batch.

    taskset -c 0,1 python3 bench/onnxruntime/inference.py --threads 2
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
import torchvision


def paper2012() -> nn.Module:
    lrn = lambda: nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)  # alpha divided by size, as our spec
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Linear(4096, 1000))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--iterations", type=int, default=30)
    args = ap.parse_args()
    torch.manual_seed(1)
    cases = [("alexnet-torchvision", torchvision.models.alexnet(), 224), ("alexnet-2012", paper2012(), 227)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, side in cases:
            model.eval()
            path = os.path.join(tmp, name + ".onnx")
            torch.onnx.export(model, torch.randn(1, 3, side, side), path, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            for batch in (int(b) for b in args.batches.split(",")):
                x = np.random.default_rng(1).standard_normal((batch, 3, side, side), dtype=np.float32)
                runs = args.iterations if batch == 1 else max(5, args.iterations // 3)
                for _ in range(3):
                    sess.run(None, {"x": x})
                times = []
                for _ in range(runs):
                    t = time.perf_counter()
                    sess.run(None, {"x": x})
                    times.append((time.perf_counter() - t) * 1000)
                print(f"onnxruntime {ort.__version__} {name} batch {batch}: {statistics.median(times):.2f} ms per batch "
                      f"(min {min(times):.2f}, {statistics.median(times) / batch:.2f} ms per image, {runs} runs)", flush=True)


if __name__ == "__main__":
    main()
