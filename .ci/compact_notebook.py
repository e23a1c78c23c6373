"""Shrink executed notebooks before committing: large PNG outputs become JPEG (quality 85, at most 1400 px).

Usage: python .ci/compact_notebook.py NOTEBOOK.ipynb [...]
"""
from __future__ import annotations

import base64
import io
import sys

import nbformat
from PIL import Image


def compact(path: str, min_bytes: int = 150_000, max_side: int = 1400) -> int:
    """Re-encode PNG outputs larger than ``min_bytes`` (base64) as JPEG; returns how many were converted."""
    notebook = nbformat.read(path, as_version=4)
    converted = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data and len(data["image/png"]) > min_bytes:
                image = Image.open(io.BytesIO(base64.b64decode(data["image/png"]))).convert("RGB")
                image.thumbnail((max_side, max_side))
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=85)
                del data["image/png"]
                data["image/jpeg"] = base64.b64encode(buffer.getvalue()).decode()
                converted += 1
    nbformat.write(notebook, path)
    return converted


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {compact(name)} images re-encoded")
