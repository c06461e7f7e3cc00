"""Every notebook of the book and the labs runs under nbval, on every device.

Each notebook runs in its own pytest process (``--nbval-lax``: cells must not
raise; outputs are not compared) with ``GRADLAB_DEVICE`` set, once on the CPU
and once on CUDA when this machine has a GPU. ``make test`` spreads them over
the cores with pytest-xdist; each records its time for the final table.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import _times

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for d in ("book", "labs")
                   for p in (ROOT / d).glob("*.ipynb"))
IDS = [str(p.relative_to(ROOT)) for p in NOTEBOOKS]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="CUDA not available on this machine: notebooks ran on CPU only"))]


def test_there_are_notebooks():
    assert any("book" in i for i in IDS) and any("labs" in i for i in IDS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them"


@pytest.mark.notebooks
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs(path, device, tmp_path):
    env = {**os.environ, "GRADLAB_DEVICE": device}
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=120",
         str(path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    name = str(path.relative_to(ROOT))
    _times.record(f"nbval-{device}-{path.stem}", kind="nbval", notebook=name,
                  device=device, seconds=seconds, passed=run.returncode == 0)
    print(f"{name} on {device}: {seconds:.1f} s")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
