"""Start-up check of the Python and torch versions this code needs (README "Requirements").

Python >= 3.10: type aliases such as ``StyleChoice = int | str | ...`` (``realtime.py``, ``transformer_net.py``) are
evaluated at import time. torch >= 2.1: the oldest release whose APIs the code uses (``torch.load(weights_only=True)``
of checkpoints, CPU bf16 autocast, ``torch.mps`` RNG state); the newer ``torch.amp.GradScaler`` (2.3) and
``torch.onnx.export(dynamo=...)`` (2.5) are used only when present. Importing ``nntools``, ``gatys``, ``realtime``,
``transformer_net`` or ``demo`` runs :func:`check_versions`, so an old interpreter or torch stops with one clear
message instead of a TypeError deep in an import.
"""
from __future__ import annotations

import re
import sys

MIN_PYTHON = (3, 10)
MIN_TORCH = (2, 1)


class UnsupportedVersionError(RuntimeError):
    """The running Python or torch is older than this code supports."""


def parse_version(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: '2.5.0a0+git1234' -> (2, 5, 0), '2.14.1+cu130' -> (2, 14, 1)."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    if not match:
        raise ValueError(f"not a version string: {text!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def version_problems(python: tuple[int, ...] | None = None, torch_version: str | None = None) -> list[str]:
    """What is too old: ``python`` (default: this interpreter) and ``torch_version`` (default: the installed torch;
    a missing torch is not reported here: ``make deps`` installs it, and ``import torch`` says so itself)."""
    python = tuple(sys.version_info[:3]) if python is None else tuple(python)
    problems = []
    if python[:2] < MIN_PYTHON:
        problems.append(f"Python {'.'.join(map(str, python))} is too old: this code needs Python >= "
                        f"{'.'.join(map(str, MIN_PYTHON))} (run it with e.g. python3.11, or `PYTHON=python3.11 make test`)")
    if torch_version is None:
        try:
            import torch
        except ImportError:
            return problems
        torch_version = torch.__version__
    if parse_version(torch_version)[:2] < MIN_TORCH:
        problems.append(f"torch {torch_version} is too old: this code needs torch >= {'.'.join(map(str, MIN_TORCH))} "
                        "(pip install --upgrade torch torchvision, with the wheel matching your CUDA version)")
    return problems


def check_versions(python: tuple[int, ...] | None = None, torch_version: str | None = None) -> None:
    """Raise :class:`UnsupportedVersionError` listing every version problem (nothing when all is supported)."""
    problems = version_problems(python, torch_version)
    if problems:
        raise UnsupportedVersionError("; ".join(problems))


check_versions()
