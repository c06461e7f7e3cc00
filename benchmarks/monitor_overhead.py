"""Overhead of GradientMonitor and of gl.fit, measured in one run.

Workload (DESIGN.md's budget): 20-layer ReLU MLP, width 256, batch 256, SGD.

* baseline: a hand-written PyTorch loop (sample a batch, zero_grad, forward,
  backward, step, read the loss);
* monitored: the same loop with a GradientMonitor recording every step;
* fit: gl.fit doing the same steps.

Each variant runs N steps, repeated; the three variants alternate within
each repeat so drift in machine speed hits them alike, and each ratio is
the median over repeats of that repeat's ratio (with its range). Prints the
per-step medians and, last, the two ratios. Budget: monitor <= 1.15x,
fit <= 1.05x. The whole comparison runs twice: with one thread (what
gl.configure_cpu() sets for the book) and with torch's default count.

Two sources of noise that have nothing to do with the monitor are held
fixed for all variants alike. Garbage from one variant is collected
before the next one is timed. And glibc's malloc is told to keep freed
memory (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_; the script re-runs
itself with them set): by default it returns the activations' memory to
the kernel after a step and page-faults it back in the next one, which
made the same loop vary between about 11 and 17 ms per forward pass from
run to run (2,500 page faults per pass, or none).

    .venv/bin/python benchmarks/monitor_overhead.py [--steps 30] [--repeats 11]
"""

import argparse
import gc
import os
import statistics
import sys
import time

import torch

import gradlab as gl

DEPTH, WIDTH, BATCH = 20, 256, 256


def make_model():
    return gl.models.MLP(256, 10, depth=DEPTH, width=WIDTH,
                         generator=torch.Generator().manual_seed(0))


def hand_loop(model, X, y, steps, monitor=None):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(X), (BATCH,), generator=g)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
        loss.item()  # a real loop reads its loss
        if monitor is not None:
            monitor.step()


def run_plain(X, y, steps):
    hand_loop(make_model(), X, y, steps)


def run_monitored(X, y, steps):
    model = make_model()
    with gl.GradientMonitor(model, capacity=steps) as monitor:
        hand_loop(model, X, y, steps, monitor)
    monitor.record()  # the one sync that reads the results


def run_fit(X, y, steps):
    gl.fit(make_model(), (X, y), loss="cross_entropy", steps=steps,
           batch_size=BATCH, lr=1e-3, device="cpu", progress=False,
           generator=torch.Generator().manual_seed(0))


def measure(X, y, steps, repeats):
    variants = {"plain": run_plain, "monitored": run_monitored,
                "fit": run_fit}
    times = {name: [] for name in variants}
    for fn in variants.values():
        fn(X, y, 3)  # warm-up
    for _ in range(repeats):
        for name, fn in variants.items():
            gc.collect()
            start = time.perf_counter()
            fn(X, y, steps)
            times[name].append((time.perf_counter() - start) / steps)
    return times


MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**30),
              "MALLOC_TRIM_THRESHOLD_": str(2**32)}


def main():
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, **MALLOC_ENV})
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    X = torch.randn(4096, 256, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (4096,), generator=torch.Generator().manual_seed(2))
    summary = []
    for threads in (1, torch.get_num_threads()):
        gl.configure_cpu(num_threads=threads)
        times = measure(X, y, args.steps, args.repeats)
        for name, t in times.items():
            print(f"{threads} thread(s) {name:>10}: "
                  f"{statistics.median(t) * 1e3:7.2f} ms/step (median of "
                  f"{args.repeats} x {args.steps} steps)")
        for name, budget in (("monitored", 1.15), ("fit", 1.05)):
            ratios = [a / b for a, b in zip(times[name], times["plain"])]
            summary.append(
                f"ratio {name}/plain, {threads} thread(s): "
                f"{statistics.median(ratios):.3f}x (range {min(ratios):.2f}-"
                f"{max(ratios):.2f}; budget {budget}x)")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
