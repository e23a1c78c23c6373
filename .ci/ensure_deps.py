"""Install what is missing from requirements.txt, and torch/torchvision only when no working torch exists.

Used by `make demo` and `make test`. A working torch (cluster CUDA build, Colab) is never reinstalled; packages
already satisfying requirements.txt are left alone, so an offline machine that has everything needs no network.
"""
from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # pip vendors packaging
    from pip._vendor.packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
TORCH_PACKAGES = {"torch", "torchvision"}


def torch_works() -> bool:
    """True when torch and torchvision import and run a tiny op (in a subprocess: a broken build can crash)."""
    probe = "import torch, torchvision; assert (torch.ones(2) + 1).sum().item() == 4"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def missing(requirements: list[Requirement]) -> list[str]:
    """Requirements not installed, or installed at a version outside the specifier."""
    needed = []
    for requirement in requirements:
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            needed.append(str(requirement))
            continue
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            needed.append(str(requirement))
    return needed


def pip_install(packages: list[str]) -> None:
    print(f"[ensure_deps] pip install {' '.join(packages)}", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *packages], check=True)


def main() -> None:
    sys.path.insert(0, str(ROOT / "code"))
    try:  # Python, and torch when one is installed (a missing torch is installed below)
        import versions  # noqa: F401
    except RuntimeError as error:
        sys.exit(f"[ensure_deps] {error}")
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    requirements = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
    if not torch_works():
        pip_install([str(r) for r in requirements if r.name in TORCH_PACKAGES])
    others = missing([r for r in requirements if r.name not in TORCH_PACKAGES])
    if others:
        pip_install(others)
    print("[ensure_deps] all requirements present", flush=True)


if __name__ == "__main__":
    main()
