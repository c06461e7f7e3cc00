import pytest
import torch

import _times
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


def _is_controller(config) -> bool:
    return not hasattr(config, "workerinput")  # pytest-xdist's workers


def pytest_sessionstart(session):
    if _is_controller(session.config):
        _times.clear()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _is_controller(config):
        return
    lines = _times.table()
    if lines:
        terminalreporter.section(
            f"notebook times (budget {_times.BUDGET:.0f} s each)")
        for line in lines:
            terminalreporter.write_line(line)
