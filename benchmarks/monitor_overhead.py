"""Overhead of GradientMonitor and of gl.fit, measured in one run.

Workload (DESIGN.md's budget): 20-layer ReLU MLP, width 256, batch 256, SGD.

* plain: a hand-written PyTorch loop (sample a batch, zero_grad, forward,
  backward, step, read the loss);
* plain again: a second, identical plain loop: the control. Its ratio to
  plain is what noise alone gives;
* monitored: the plain loop with a GradientMonitor recording every step;
* fit: gl.fit doing the same steps.

The monitor's budget is per training step (<= 1.15x), so its steps are
timed one by one. Each repeat builds the three loops afresh (two identical
models can differ by 5 % in speed, by where their memory landed), warms
them up, then runs them in turn, a block of steps each, three times over,
so drift in the machine's speed hits all of them alike. A repeat's ratio
is that of its median step times, which a step the OS interrupted moves by
little; the ratio printed is the median over repeats, with its range. What
the monitor costs once (construction, its first, traced pass, reading the
record) is printed apart. gl.fit runs its own loop, so fit and plain are
timed as whole runs of the same steps, in turn, and their ratio is the
median over repeats (budget <= 1.05x).

Two sources of noise that have nothing to do with the monitor are held
fixed for all variants alike. Garbage from one variant is collected
before the next one runs. And glibc's malloc is told to keep freed
memory (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_; the script re-runs
itself with them set): by default it returns the activations' memory to
the kernel after a step and page-faults it back in the next one, which
made the same loop vary between about 11 and 17 ms per forward pass from
run to run (2,500 page faults per pass, or none).

The comparison runs twice: with one thread (what gl.configure_cpu() sets
for the book) and with torch's default count.

    .venv/bin/python benchmarks/monitor_overhead.py [--steps 30] [--repeats 21]
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
BUDGETS = {"monitored": 1.15, "fit": 1.05}


def make_model():
    return gl.models.MLP(256, 10, depth=DEPTH, width=WIDTH,
                         generator=torch.Generator().manual_seed(0))


class Loop:
    """One model and optimizer (and monitor), stepped on demand."""

    def __init__(self, X, y, monitor: bool):
        self.X, self.y = X, y
        self.model = make_model()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self.gen = torch.Generator().manual_seed(0)
        self.monitor = None
        if monitor:
            self.monitor = gl.GradientMonitor(self.model, capacity=1024)
            self.monitor.__enter__()

    def step(self) -> float:
        """One training step; returns its wall time in seconds."""
        start = time.perf_counter()
        idx = torch.randint(0, len(self.X), (BATCH,), generator=self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(self.model(self.X[idx]),
                                                 self.y[idx])
        loss.backward()
        self.opt.step()
        loss.item()  # a real loop reads its loss
        if self.monitor is not None:
            self.monitor.step()
        return time.perf_counter() - start


def step_ratios(X, y, steps, repeats) -> tuple[dict, dict]:
    """Per repeat, each loop's median step time and its ratio to plain's."""
    medians = {"plain": [], "plain again": [], "monitored": []}
    for _ in range(repeats):
        loops = {"plain": Loop(X, y, False),
                 "plain again": Loop(X, y, False),
                 "monitored": Loop(X, y, True)}
        for loop in loops.values():
            for _ in range(2):  # warm-up; the monitor traces its first pass
                loop.step()
        times = {name: [] for name in loops}
        for block in range(3):
            for name, loop in loops.items():
                gc.collect()
                times[name] += [loop.step() for _ in range(steps // 3)]
        loops["monitored"].monitor.remove()
        for name, t in times.items():
            medians[name].append(statistics.median(t))
    ratios = {name: [a / b for a, b in zip(m, medians["plain"])]
              for name, m in medians.items() if name != "plain"}
    return medians, ratios


def one_off_costs(X, y, repeats) -> dict:
    """Seconds the monitor costs once: construction and `with`, its first
    (traced) step beyond a followed one, and record()."""
    costs = {"constructor": [], "first step": [], "record()": []}
    for _ in range(repeats):
        loop = Loop(X, y, False)
        gc.collect()
        start = time.perf_counter()
        loop.monitor = gl.GradientMonitor(loop.model, capacity=64)
        loop.monitor.__enter__()
        costs["constructor"].append(time.perf_counter() - start)
        first = loop.step()
        followed = statistics.median(loop.step() for _ in range(3))
        costs["first step"].append(first - followed)
        start = time.perf_counter()
        loop.monitor.record()
        costs["record()"].append(time.perf_counter() - start)
        loop.monitor.remove()
    return {k: statistics.median(v) for k, v in costs.items()}


def run_plain(X, y, steps):
    loop = Loop(X, y, False)
    for _ in range(steps):
        loop.step()


def run_fit(X, y, steps):
    gl.fit(make_model(), (X, y), loss="cross_entropy", steps=steps,
           batch_size=BATCH, lr=1e-3, device="cpu", progress=False,
           generator=torch.Generator().manual_seed(0))


def fit_ratios(X, y, steps, repeats) -> list:
    run_plain(X, y, 3), run_fit(X, y, 3)  # warm-up
    ratios = []
    for _ in range(repeats):
        took = []
        for fn in (run_plain, run_fit):
            gc.collect()
            start = time.perf_counter()
            fn(X, y, steps)
            took.append(time.perf_counter() - start)
        ratios.append(took[1] / took[0])
    return ratios


MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**30),
              "MALLOC_TRIM_THRESHOLD_": str(2**32)}


def main():
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, **MALLOC_ENV})
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    X = torch.randn(4096, 256, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (4096,), generator=torch.Generator().manual_seed(2))
    summary = []
    for threads in (1, torch.get_num_threads()):
        gl.configure_cpu(num_threads=threads)
        medians, ratios = step_ratios(X, y, args.steps, args.repeats)
        for name, m in medians.items():
            print(f"{threads} thread(s) {name:>11}: "
                  f"{statistics.median(m) * 1e3:7.2f} ms/step (median over "
                  f"{args.repeats} repeats of {args.steps} steps)")
        once = one_off_costs(X, y, 5)
        print(f"{threads} thread(s) monitor, once: " + ", ".join(
            f"{k} {v * 1e3:.1f} ms" for k, v in once.items()))
        fit = fit_ratios(X, y, args.steps, args.repeats)
        for name, what in (("plain again", "the noise"),
                           ("monitored", f"budget {BUDGETS['monitored']}x")):
            r = ratios[name]
            summary.append(
                f"ratio {name}/plain, {threads} thread(s): "
                f"{statistics.median(r):.3f}x (range {min(r):.2f}-"
                f"{max(r):.2f} over {len(r)} repeats; {what})")
        summary += [
            f"ratio fit/plain, {threads} thread(s): "
            f"{statistics.median(fit):.3f}x (range {min(fit):.2f}-"
            f"{max(fit):.2f} over {len(fit)} runs of {args.steps} steps; "
            f"budget {BUDGETS['fit']}x)"]
    print("\n".join(summary))


if __name__ == "__main__":
    main()
