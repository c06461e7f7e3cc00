"""Measure the two CPU settings that gl.configure_cpu() applies.

1. Threads: a training step of a small model (20-layer MLP, width 32,
   batch 32, the size of the labs) and of a large one (width 256, batch
   256) with torch's default thread count vs 1 thread.
2. Denormals: forward+backward of a 50-layer sigmoid MLP, whose first
   layers' gradients are tiny, with and without flushing denormals.

Prints each time and the ratio (baseline / configured; > 1 means the
setting helps), all measured in this run. Usage:

    .venv/bin/python benchmarks/cpu_settings.py
"""

import statistics
import time

import torch

import gradlab as gl


def median_time(fn, repeats=7, number=20):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def train_step(model, opt, x, y):
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def main():
    X, y, _, _ = gl.data.digits()
    default_threads = torch.get_num_threads()

    thread_ratios = {}
    for width, batch in ((32, 32), (256, 256)):
        model = gl.models.MLP(64, 10, depth=20, width=width)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        xb, yb = X[:batch], y[:batch]
        step = lambda: train_step(model, opt, xb, yb)  # noqa: E731
        torch.set_num_threads(default_threads)
        t_default = median_time(step)
        torch.set_num_threads(1)
        t_one = median_time(step)
        thread_ratios[width] = t_default / t_one
        print(f"train step, width {width}: {default_threads} threads "
              f"{t_default * 1e3:.2f} ms; 1 thread {t_one * 1e3:.2f} ms")

    deep = gl.models.MLP(64, 10, depth=50, width=64, activation="sigmoid",
                         init="default")
    xb, yb = X[:256], y[:256]
    backward = lambda: torch.nn.functional.cross_entropy(  # noqa: E731
        deep(xb), yb).backward()
    torch.set_flush_denormal(False)
    t_denormal = median_time(backward)
    torch.set_flush_denormal(True)
    t_flush = median_time(backward)
    print(f"50-layer sigmoid backward, denormals kept: "
          f"{t_denormal * 1e3:.2f} ms; flushed: {t_flush * 1e3:.2f} ms")

    for width, ratio in thread_ratios.items():
        print(f"ratio threads default/1, width {width}: {ratio:.2f}x")
    print(f"ratio denormals kept/flushed: {t_denormal / t_flush:.2f}x")


if __name__ == "__main__":
    main()
