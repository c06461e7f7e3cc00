"""How well a sample of each weight estimates the update ratio.

The monitor's update ratio ``||W_after - W_before|| / ||W_before||`` is
computed on a sample of at most 4,096 entries per matrix
(:mod:`gradlab.monitor.sample`). This script trains the overhead
benchmark's 20-layer MLP (width 256) for 30 steps with Adam and with SGD +
momentum and, for every 256 x 256 matrix and step, compares the exact ratio
with the ratio on four samples of the same size:

* ``random``: 4,096 entries drawn uniformly without replacement;
* ``entry lattice``: every s-th entry, s coprime to the row length;
* ``stride 16``: every 16th entry (16 divides the row: 16 columns only);
* ``block lattice``: what the monitor uses, every s-th run of 16 entries.

It prints the median, 90th percentile and maximum of the relative error.

    .venv/bin/python benchmarks/update_sample.py
"""

import math

import torch

import gradlab as gl
from gradlab.monitor.sample import BLOCK, block_lattice

SIZE, STEPS = 4096, 30


def entry_lattice(numel: int, row: int) -> torch.Tensor:
    stride = -(-numel // SIZE)
    while math.gcd(stride, row) != 1:
        stride += 1
    return torch.arange(0, numel, stride)


def block_sample(numel: int, row: int) -> torch.Tensor:
    stride, blocks, block = block_lattice(numel, row, SIZE)
    starts = torch.arange(blocks) * stride * block
    return (starts[:, None] + torch.arange(block)).reshape(-1)


def errors(optimizer: str) -> dict:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(4096, 256, generator=gen)
    y = torch.randint(0, 10, (4096,), generator=gen)
    model = gl.models.MLP(256, 10, depth=20, width=256,
                          generator=torch.Generator().manual_seed(0))
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3)
           if optimizer == "adam" else
           torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    big = [p for p in model.parameters() if p.dim() == 2 and p.numel() > SIZE]
    found: dict = {}
    for _ in range(STEPS):
        before = [w.detach().clone().reshape(-1) for w in big]
        idx = torch.randint(0, len(X), (256,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
        opt.step()
        for p, b in zip(big, before):
            w, n, row = p.detach().reshape(-1), p.numel(), p.shape[1]
            exact = ((w - b).norm() / b.norm()).item()
            samples = {
                "random": torch.randperm(n, generator=gen)[:SIZE],
                "entry lattice": entry_lattice(n, row),
                "stride 16": torch.arange(0, n, BLOCK),
                "block lattice": block_sample(n, row)}
            for name, s in samples.items():
                est = ((w[s] - b[s]).norm() / b[s].norm()).item()
                found.setdefault(name, []).append(abs(est / exact - 1))
    return found


def main():
    for optimizer in ("adam", "sgd+momentum"):
        for name, errs in errors(optimizer).items():
            e = torch.tensor(errs)
            print(f"{optimizer:>12} {name:>13}: relative error median "
                  f"{e.median():.2%}, 90th percentile {e.quantile(0.9):.2%}, "
                  f"max {e.max():.2%}")


if __name__ == "__main__":
    main()
