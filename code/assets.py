"""Shipped weights: compact fp16 state dicts in ``assets/``, verified by SHA-256 against ``assets/MANIFEST.json``.

``MANIFEST.json`` maps each file name (relative to ``assets/``) to ``{"sha256": ..., "bytes": ..., "recipe": {...}}``
where the recipe records how the weights were made (data, iterations, resolution, loss weights, wall time, device).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
MANIFEST_PATH = ASSETS_DIR / "MANIFEST.json"


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt, altered, or made for another architecture."""


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, write: "callable") -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(handle, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _locked_manifest(manifest_path: Path) -> Iterator[dict[str, Any]]:
    """Read-modify-write the manifest under an exclusive lock (several trainings may finish at once)."""
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = read_manifest(manifest_path)
        yield manifest
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(manifest_path, lambda file: file.write(text.encode()))


def read_manifest(manifest_path: Path = MANIFEST_PATH) -> dict[str, Any]:
    """The manifest as a dict (empty when there is none yet)."""
    if not manifest_path.exists():
        return {}
    return json.loads(manifest_path.read_text())


def save_fp16_weights(
    state_dict: dict[str, torch.Tensor],
    name: str,
    recipe: dict[str, Any],
    assets_dir: Path = ASSETS_DIR,
) -> Path:
    """Store a state dict with floating tensors in fp16 as ``assets_dir/name`` and record it in the manifest."""
    path = assets_dir / name
    compact = {k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu().contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(path, lambda file: torch.save(compact, file))
    with _locked_manifest(assets_dir / "MANIFEST.json") as manifest:
        manifest[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size, "recipe": recipe}
    return path


def load_verified_weights(
    name: str, assets_dir: Path = ASSETS_DIR, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Load ``assets_dir/name`` after checking its SHA-256 against the manifest; floats are cast to ``dtype``."""
    path = assets_dir / name
    manifest = read_manifest(assets_dir / "MANIFEST.json")
    if name not in manifest:
        raise WeightsError(f"{path} is not listed in {assets_dir / 'MANIFEST.json'}; refusing unverified weights")
    if not path.exists():
        raise WeightsError(f"Weights file {path} is missing (listed in the manifest); restore it from git")
    actual = sha256_file(path)
    if actual != manifest[name]["sha256"]:
        raise WeightsError(
            f"SHA-256 mismatch for {path}: expected {manifest[name]['sha256']}, got {actual}. "
            "The file is corrupt or was altered; restore it with `git checkout -- assets/`."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise WeightsError(f"Cannot load weights file {path}: {error}") from error
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def load_state_into(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict`` with an error that says which architecture was expected and what differs."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = [
        f"{k}: expected {tuple(expected[k].shape)}, file has {tuple(state_dict[k].shape)}"
        for k in expected
        if k in state_dict and expected[k].shape != state_dict[k].shape
    ]
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            details.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if wrong_shape:
            details.append("shape mismatch " + "; ".join(wrong_shape[:3]))
        raise WeightsError(
            f"{source} does not fit {type(module).__name__} ({sum(p.numel() for p in module.parameters())} "
            f"parameters): " + ", ".join(details) + ". It was made for another architecture or size."
        )
    module.load_state_dict(state_dict)
