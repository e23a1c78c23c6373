"""Test configuration: put ``code/`` (and ``experiments/``) on ``sys.path`` (``code`` is also a stdlib module, so we never ``import code``)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "code"), str(ROOT / "experiments")]  # experiments/: the notebooks' own helpers
os.environ.setdefault("MPLBACKEND", "Agg")


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors on a shared 2-core machine run faster, and deterministically, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cpu_only(reason): the test pins the CPU on purpose and says why (bit-exact resume needs "
        "deterministic kernels: on CUDA, ReflectionPad2d's backward and others accumulate with atomicAdd, so two runs "
        "differ in the last bits); it runs on GPU nodes too, on their CPU")
