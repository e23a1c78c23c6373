"""The bookkeeping every benchmark script shares: when it ran, how busy the machine was, and writing its JSON.

The scripts run as ``python bench/<script>.py`` (so do the subprocesses they start with ``__file__``), which puts
``bench/`` first on ``sys.path``: ``import benchlib`` needs nothing more. Code that loads a script some other way
(``importlib.util.spec_from_file_location``) must put ``bench/`` on ``sys.path`` first. Nothing here imports torch, so
worker processes that measure peak memory can import it.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable


def utc_timestamp() -> str:
    """Now, in UTC, as ISO 8601 to the second: ``2024-05-01T12:34:56Z`` (the ``time`` of every result file)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none (no ``os.getloadavg``, or it fails)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def format_load(load: float | None) -> str:
    """A load average for a printed summary: one decimal, or "unknown" for None."""
    return "unknown" if load is None else f"{load:.1f}"


def write_json(data: Any, path: str | Path, indent: int = 2, default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``data`` as indented JSON plus a final newline to ``path`` (creating its folders), print
    "wrote PATH" and return the path. ``default`` is ``json.dumps``'s, for values JSON has no type for."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent, default=default) + "\n")
    print(f"wrote {path}", flush=True)
    return path
