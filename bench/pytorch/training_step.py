"""PyTorch's CPU training step, the peer of TrainingBenchmarks (bench/AlexNet.Aot.Bench/TrainingBenchmarks.cs).

One SGD step (momentum 0.9, weight decay 5e-4; forward, cross-entropy, backward, update) on random data, for
alexnet-fmnist at batch 128 (the DESIGN.md layout: LRN, overlapping max-pooling, dropout 0.5) and torchvision's
AlexNet at batch 32. Prints one line per case: the median and the fastest of the timed steps after a warm-up.

    taskset -c 0,1 python3 bench/pytorch/training_step.py --threads 2
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torchvision


def fmnist() -> nn.Module:
    lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)  # alpha divided by size, as our spec
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(),
        nn.Conv2d(96, 96, 3, padding=1), nn.ReLU(),
        nn.Conv2d(96, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(64 * 2 * 2, 256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 10))


def time_steps(model: nn.Module, shape, classes: int, batch: int, warmup: int, steps: int):
    torch.manual_seed(1)
    x = torch.randn(batch, *shape)
    y = torch.randint(0, classes, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, model, shape, classes, batch in (
        ("alexnet-fmnist", fmnist(), (1, 28, 28), 10, 128),
        ("alexnet-torchvision", torchvision.models.alexnet(), (3, 224, 224), 1000, 32),
    ):
        med, best = time_steps(model, shape, classes, batch, warmup=3, steps=a.steps)
        print(f"pytorch {name} batch {batch}: median {med * 1000:.1f} ms per step ({batch / med:.0f} images/s), fastest {best * 1000:.1f} ms")


if __name__ == "__main__":
    main()
