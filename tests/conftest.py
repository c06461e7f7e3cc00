import pytest
import torch

import gradlab as gl


@pytest.fixture(autouse=True)
def _cpu_settings():
    # The settings the notebooks use; one thread also makes sums repeatable.
    gl.configure_cpu(num_threads=1, flush_denormal=True)


@pytest.fixture(scope="session")
def digits():
    return gl.data.digits(seed=0)


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)
