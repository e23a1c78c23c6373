"""Test configuration: put ``code/`` on ``sys.path`` (``code`` is also a stdlib module, so we never ``import code``)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))
os.environ.setdefault("MPLBACKEND", "Agg")
