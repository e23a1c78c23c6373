"""Install what is missing from requirements.txt, and torch/torchvision only when no working torch exists.

Used by `make demo` and `make test`. The logic is `notebook_setup.install_missing`, the same the notebooks' first
cells run: a working torch (cluster CUDA build, Colab) is never reinstalled; packages already satisfying
requirements.txt are left alone, so an offline machine that has everything needs no network.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

from notebook_setup import InstallError, install_missing  # noqa: E402


def main() -> None:
    try:  # Python, and torch when one is installed (a missing torch is installed below)
        import runtime  # noqa: F401
    except RuntimeError as error:
        sys.exit(f"[ensure_deps] {error}")
    try:
        install_missing(ROOT / "requirements.txt", log=lambda line: print(line.replace("[setup]", "[ensure_deps]"), flush=True))
    except InstallError as error:
        sys.exit(f"[ensure_deps] {error}")
    print("[ensure_deps] all requirements present", flush=True)


if __name__ == "__main__":
    main()
