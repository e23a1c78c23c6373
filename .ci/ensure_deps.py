"""Install what is missing from requirements.txt, and torch/torchvision only when no working torch exists.

Used by `make demo` and `make test`. The logic is `notebook_setup.install_missing`, the same the notebooks' first
cells run: a working torch (cluster CUDA build, Colab) is never reinstalled; packages already satisfying
requirements.txt are left alone, so an offline machine that has everything needs no network.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

from notebook_setup import InstallError, install_missing  # noqa: E402


def check_versions() -> None:
    """Python and torch new enough (``runtime`` checks both when imported); exits with its one-line message if not."""
    try:
        import runtime  # noqa: F401
    except RuntimeError as error:
        sys.exit(f"[ensure_deps] {error}")


def main() -> None:
    try:  # a torch already installed is checked before anything else is installed beside it
        importlib.import_module("torch")
    except ImportError:  # a fresh machine: torch (and numpy) come with install_missing below
        pass
    else:
        check_versions()
    try:
        install_missing(ROOT / "requirements.txt", log=lambda line: print(line.replace("[setup]", "[ensure_deps]"), flush=True))
    except InstallError as error:
        sys.exit(f"[ensure_deps] {error}")
    importlib.invalidate_caches()  # packages installed just now are importable in this process
    check_versions()
    print("[ensure_deps] all requirements present", flush=True)


if __name__ == "__main__":
    main()
