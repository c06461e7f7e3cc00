"""The update ratio's weight sample (gradlab.monitor.sample)."""

import math

import pytest
import torch
from torch import nn

import gradlab as gl
from gradlab.monitor.sample import BLOCK, UpdateSample, block_lattice


def _positions(numel, layout):
    """The flat positions a layout samples, written out by hand."""
    stride, blocks, block = layout
    return [b * stride * block + i for b in range(blocks) for i in range(block)]


@pytest.mark.parametrize("shape", [(256, 256), (10, 256), (300, 17),
                                   (64, 3, 5, 5), (4096, 3), (17, 241)])
def test_block_lattice_stays_inside_the_matrix_and_within_size(shape):
    numel, row = math.prod(shape), math.prod(shape[1:])
    stride, blocks, block = layout = block_lattice(numel, row, 4096)
    pos = _positions(numel, layout)
    assert len(pos) == len(set(pos)) <= 4096
    assert max(pos) < numel
    if numel <= 4096:
        assert pos == list(range(numel))        # small: the whole matrix
    else:
        assert block == BLOCK and math.gcd(stride, row) == 1
        assert len(pos) > 4096 // 2             # not needlessly small
        if row % BLOCK == 0:                    # every column is visited
            assert {p % row for p in pos} == set(range(row))


def test_ratios_equal_norms_on_the_sampled_entries_by_hand():
    torch.manual_seed(0)
    weights = [nn.Parameter(torch.randn(*s)) for s in
               ((256, 256), (10, 256), (8, 3, 3, 3))]
    sample = UpdateSample(weights, 4096)
    sample.reset()
    before = [w.detach().clone() for w in weights]
    with torch.no_grad():
        for w in weights:
            w.add_(torch.randn_like(w), alpha=1e-2)
    ratio = sample.advance()
    for j, (w, b, layout) in enumerate(zip(weights, before, sample.layout)):
        pos = torch.tensor(_positions(w.numel(), layout))
        a, b = w.detach().reshape(-1)[pos], b.reshape(-1)[pos]
        want = ((a - b).norm() / b.norm()).item()
        assert ratio[j].item() == pytest.approx(want, rel=1e-5)
    # the weights now are the next step's 'before': no change, no update
    assert torch.equal(sample.advance(), torch.zeros(3))


def test_a_replaced_or_non_contiguous_weight_is_read_where_it_is_now():
    torch.manual_seed(0)
    transposed = nn.Parameter(torch.randn(300, 200).t())   # not contiguous
    plain = nn.Parameter(torch.randn(100, 100))
    sample = UpdateSample([transposed, plain], 4096)
    sample.reset()
    with torch.no_grad():
        transposed.mul_(1.5)
    plain.data = plain.data * 2     # new storage: old views would see 1x
    ratio = sample.advance()
    assert ratio.tolist() == pytest.approx([0.5, 1.0], rel=1e-6)


def test_monitor_update_ratio_follows_the_sample(digits):
    """The monitor's ratio of a big layer is the sample's, and close to
    the exact one (the sample's accuracy: benchmarks/update_sample.py)."""
    X, y, _, _ = digits
    model = gl.models.MLP(64, 10, depth=2, width=256,
                          generator=torch.Generator().manual_seed(0))
    big = model.layers[1].linear.weight
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with gl.GradientMonitor(model) as monitor:
        before = big.detach().clone()
        nn.functional.cross_entropy(model(X[:128]), y[:128]).backward()
        opt.step()
        monitor.step()
    stride, blocks, block = block_lattice(big.numel(), 256, 4096)
    pos = torch.tensor(_positions(big.numel(), (stride, blocks, block)))
    a, b = big.detach().reshape(-1)[pos], before.reshape(-1)[pos]
    got = monitor.record().update_ratio[0, 1].item()
    assert got == pytest.approx(((a - b).norm() / b.norm()).item(), rel=1e-5)
    exact = ((big.detach() - before).norm() / before.norm()).item()
    assert got == pytest.approx(exact, rel=0.1)
