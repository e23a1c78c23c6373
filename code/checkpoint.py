"""Everything that makes a training folder safe to stop and resume: checkpoint files, RNG state, config diff.

* :class:`Checkpoint`: a run folder's checkpoint files, written atomically (:func:`atomic_write_bytes`: temporary
  file, fsync, ``os.replace``), the previous good one kept as ``checkpoint.prev.pth.tar``, epoch copies, the stored
  ``config.json`` and its diff on resume; :func:`first_non_finite` finds a NaN/inf in a state before it is saved.
* :func:`capture_rng_state` / :func:`restore_rng_state`: the global RNG states (Python, NumPy, torch, CUDA, MPS) a
  checkpoint carries for exact resume; :class:`CheckpointSchedule` says when a periodic checkpoint is due;
  :class:`WallClock` accumulates a run's training time over resumes.

The folder's lock (one live process writes into an ``output_dir``) is :func:`runtime.acquire_output_dir`."""
from __future__ import annotations

import io
import json
import math
import os
import random
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:  # annotations only: nntools imports this module
    from nntools import TrainingModel

CHECKPOINT_NAME = "checkpoint.pth.tar"
PREV_CHECKPOINT_NAME = "checkpoint.prev.pth.tar"
CHECKPOINT_FORMAT = 1


# ----------------------------------------------------------------------------- errors
class ConfigMismatchError(ValueError):
    """The experiment's configuration differs from the one stored in ``output_dir``."""


class CheckpointError(RuntimeError):
    """Checkpoints exist but none can be loaded (or one does not fit the model)."""


def plain(obj: Any) -> Any:
    """``obj`` with tensors / numpy values turned into python numbers and lists (weights_only-safe, JSON-able)."""
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.detach().cpu().tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """Global RNG states (Python, NumPy, torch CPU and the training device) as tensors / lists / numbers: what a
    checkpoint carries so that a resumed run draws the same random numbers as an uninterrupted one."""
    version, mt_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(mt_state), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":  # only this process's GPU (others may belong to other DDP ranks)
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def restore_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    elif "mps" in state and device.type == "mps":
        torch.mps.set_rng_state(state["mps"])


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (best effort: not possible on every OS / file system)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_temporary(path: Path) -> tuple[int, Path]:
    """An exclusively created temporary file beside ``path``: ``<name>.tmp``, or ``<name>.<random>.tmp`` when
    another writer (or a killed one) holds that name. Permissions follow the umask like any new file."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        return os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666), temporary
    except FileExistsError:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)  # mkstemp makes 0600 files
        return handle, Path(name)


def atomic_write_bytes(path: Path, write: Callable[[Any], None], previous: Path | None = None) -> None:
    """Write ``path`` through ``write(file)`` so that it holds either the old or the new bytes, never a mix.

    The bytes go to a temporary file beside it (created exclusively, so concurrent writers never share one), are
    fsynced, then renamed over ``path`` (``os.replace``) and the folder is fsynced. With ``previous``, an existing
    ``path`` is first renamed to ``previous`` (after the new bytes are safe on disk). A failed ``write`` removes the
    temporary file; one left by a killed process is removed by the next :meth:`Checkpoint.remove_orphans`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _open_temporary(path)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def first_non_finite(model: TrainingModel) -> str | None:
    """Name of the first NaN/inf tensor of the state a checkpoint would hold: network parameters and buffers,
    optimiser state, the AMP loss scale and tensors of ``extra_state()``; None when everything is finite."""
    names: dict[int, str] = {}
    for net_name, network in model.networks.items():
        for key, tensor in network.state_dict(keep_vars=True).items():
            names[id(tensor)] = f"{net_name}.{key}"
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
                return f"network {net_name!r} tensor {key!r}"
    for opt_name, optimizer in model.optimizers.items():
        for param, state in optimizer.state.items():
            for key, value in state.items():
                if (isinstance(value, torch.Tensor) and value.is_floating_point()
                        and not bool(torch.isfinite(value).all())):
                    return f"optimizer {opt_name!r} state {key!r} of {names.get(id(param), 'a parameter')}"
    if model.scaler.is_enabled():
        scale = model.scaler.get_scale()
        if not math.isfinite(scale) or scale <= 0:
            return f"AMP loss scale ({scale})"
    stack: list[tuple[str, Any]] = [("extra_state", model.extra_state())]
    while stack:
        where, value = stack.pop()
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return where
        elif isinstance(value, Mapping):
            stack.extend((f"{where}[{k!r}]", v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            return where
    return None


class CheckpointSchedule:
    """When a long run writes its next checkpoint: after ``minutes`` of wall time or ``iterations`` steps since the
    last one, whichever comes first (None switches a criterion off). Time bounds the work a crash can lose on any
    device; counting alone saves every few seconds on a GPU (4,000 fsynced saves in a 40k-iteration run)."""

    def __init__(self, iterations: int | None = None, minutes: float | None = 10.0, start_iteration: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if iterations is not None and iterations < 1 or minutes is not None and minutes <= 0:
            raise ValueError(f"checkpoint interval must be >= 1 iteration / > 0 minutes (or None), got "
                             f"iterations={iterations}, minutes={minutes}")
        self.iterations, self.minutes, self.clock = iterations, minutes, clock
        self.saved(start_iteration)

    def saved(self, iteration: int) -> None:
        """Record that a checkpoint was written at ``iteration`` (now)."""
        self.last_iteration, self.last_time = iteration, self.clock()

    def due(self, iteration: int) -> bool:
        """Whether a checkpoint is due at ``iteration``."""
        if iteration <= self.last_iteration:
            return False
        by_count = self.iterations is not None and iteration - self.last_iteration >= self.iterations
        by_time = self.minutes is not None and self.clock() - self.last_time >= self.minutes * 60
        return by_count or by_time


# ----------------------------------------------------------------------------- config
_OPTIMIZER_SKIP = {"params", "initial_lr", "foreach", "capturable", "differentiable", "fused"}


def flatten_config(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Add ``value`` to ``out`` under ``prefix``; nested mappings become dotted keys (``{"a": {"b": 1}}`` ->
    ``"a.b": 1``), values are made JSON-able (:func:`plain`): the form of ``config.json``."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            flatten_config(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.loads(json.dumps(plain(value)))


def optimizer_hyperparameters(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Hyper-parameters of every param group (the lr before any scheduler decay), as config keys."""
    out: dict[str, Any] = {}
    for i, group in enumerate(optimizer.param_groups):
        prefix = "" if i == 0 else f"group{i}."
        for key, value in group.items():
            if key in _OPTIMIZER_SKIP or not isinstance(value, (bool, int, float, str, tuple, list, type(None))):
                continue
            if key == "lr":
                value = group.get("initial_lr", value)
            out[prefix + key] = value.item() if isinstance(value, torch.Tensor) else value
    return out


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (stored, new)} for every key whose value differs ('<missing>' when absent)."""
    keys = list(old) + [k for k in new if k not in old]
    return {k: (old.get(k, "<missing>"), new.get(k, "<missing>"))
            for k in keys if old.get(k, "<missing>") != new.get(k, "<missing>")}


def apply_optimizer_change(model: TrainingModel, key: str, value: Any) -> None:
    """Set an accepted ``optimizer.<name>.[group<i>.]<hyper-parameter>`` change on top of the restored optimizer
    state; an lr change keeps the scheduler's decay factor. Other keys are ignored."""
    match = re.fullmatch(r"optimizer\.(.+?)\.(?:group(\d+)\.)?([^.]+)", key)
    if not match or match.group(3) == "class" or match.group(1) not in model.optimizers:
        return
    optimizer = model.optimizers[match.group(1)]
    index, hp = int(match.group(2) or 0), match.group(3)
    if index >= len(optimizer.param_groups) or value == "<missing>":
        return
    group = optimizer.param_groups[index]
    if hp != "lr":
        group[hp] = tuple(value) if isinstance(group.get(hp), tuple) else value
        return
    old_base = group.get("initial_lr", group["lr"])
    group["lr"] = value * (group["lr"] / old_base) if old_base else value  # keep the decay factor
    if "initial_lr" in group:
        group["initial_lr"] = value
    for scheduler in model.schedulers.values():
        if getattr(scheduler, "optimizer", None) is optimizer and hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs[index] = value
            if hasattr(scheduler, "_last_lr"):
                scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]


def _mismatch_message(folder: Path, refused: dict[str, tuple[Any, Any]]) -> str:
    lines = [f"The configuration differs from the one stored in {folder}:"]
    lines += [f"  {k}: stored {stored!r}, new {new!r}" for k, (stored, new) in refused.items()]
    keys = ", ".join(repr(k) for k in refused)
    lines += ["If this change is on purpose, accept it explicitly (it is recorded and, for optimizer",
              "hyper-parameters, applied on top of the resumed optimizer state):",
              f"  Experiment(..., accept_config_changes=[{keys}])   # or accept_config_changes=\"all\"",
              "Otherwise use another output_dir or restore the previous settings."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the files of a run folder
class Checkpoint:
    """The checkpoint files of one run folder, all written atomically (:func:`atomic_write_bytes`) and read with
    ``torch.load(..., weights_only=True)``:

    * ``checkpoint.pth.tar``, the latest state; the one before it is kept as ``checkpoint.prev.pth.tar`` and read
      when the latest is corrupt (the corrupt file is then set aside as ``checkpoint.corrupt-<time>.pth.tar``);
    * ``checkpoint_epochNNNN.pth.tar``, copies kept at epoch ends; one lost to a kill during the copy is recreated
      on resume (:meth:`restore_epoch_copies`);
    * ``config.json`` (and a readable ``config.txt``): a new run's configuration is compared with it and every
      difference must be accepted on purpose (:meth:`check_config`).
    The caller holds the folder's lock (:func:`acquire`) while it writes."""

    REQUIRED_KEYS = frozenset({"networks", "optimizers", "epoch", "iteration", "rng"})

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.latest_is_corrupt = False  # set by read(): the next write sets the latest aside instead of rotating it
        self.verified_weights_only = False  # the first write checks that weights_only=True loads it

    @property
    def path(self) -> Path:
        """The latest checkpoint."""
        return self.folder / CHECKPOINT_NAME

    @property
    def previous_path(self) -> Path:
        """The checkpoint before the latest one."""
        return self.folder / PREV_CHECKPOINT_NAME

    @property
    def config_path(self) -> Path:
        """The run's stored configuration."""
        return self.folder / "config.json"

    def epoch_copy_path(self, epoch: int) -> Path:
        """The copy of the checkpoint written at the end of ``epoch``."""
        return self.folder / f"checkpoint_epoch{epoch:04d}.pth.tar"

    def remove_orphans(self) -> None:
        """Delete temporary files a process killed while writing left (safe only while holding the lock)."""
        for orphan in sorted(self.folder.glob("*.tmp")):
            if orphan.name.lstrip(".").startswith(("checkpoint", "config")):
                size = orphan.stat().st_size
                orphan.unlink()
                warnings.warn(f"Removed {orphan} ({size} bytes), left by a process killed while writing it")

    def _load(self, path: Path) -> dict[str, Any]:
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing = self.REQUIRED_KEYS - set(state)
        if missing:
            raise KeyError(f"not an nntools checkpoint (missing {sorted(missing)})")
        return state

    def read(self) -> tuple[dict[str, Any] | None, Path | None]:
        """The latest loadable state and its file, falling back to the previous one; (None, None) in a folder
        without checkpoints; :class:`CheckpointError` when checkpoints exist but none loads."""
        problems: list[str] = []
        candidates = [self.path, self.previous_path]
        for i, path in enumerate(candidates):
            if not path.exists():
                continue
            try:
                state = self._load(path)
            except Exception as error:  # noqa: BLE001 - any failure means "unusable file"
                problem = f"{path}: {type(error).__name__}: {str(error)[:300]}"
                problems.append(problem)
                rest = [str(p) for p in candidates[i + 1:] if p.exists()]
                warnings.warn(f"Checkpoint {problem} -- " + (f"falling back to {rest[0]}" if rest else "no fallback"))
                self.latest_is_corrupt = self.latest_is_corrupt or path == self.path
                continue
            if problems or path != self.path:
                warnings.warn(f"Resuming from {path} (epoch {state['epoch']}, iteration {state['iteration']})")
            return state, path
        if problems:
            epoch_copies = sorted(p.name for p in self.folder.glob("checkpoint_epoch*.pth.tar"))
            hint = (f" Epoch copies exist ({', '.join(epoch_copies)}): copy one to {self.path} "
                    "to resume from it." if epoch_copies else "")
            raise CheckpointError("No loadable checkpoint; nothing was deleted or overwritten:\n  "
                                  + "\n  ".join(problems) + "\nMove these files away to start from "
                                  "scratch, or use another output_dir." + hint)
        return None, None

    def write(self, state: Mapping[str, Any]) -> None:
        """Save ``state`` as the latest checkpoint; the latest one becomes the previous (a corrupt latest is set
        aside instead, keeping the good previous). The first write checks that ``weights_only=True`` loads it."""
        if not self.verified_weights_only:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            try:
                torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu", weights_only=True)
            except Exception as error:
                raise TypeError("the checkpoint cannot be loaded with weights_only=True; keep extra_state()/history "
                                f"to tensors, lists, dicts and numbers: {error}") from error
            self.verified_weights_only = True
            write: Callable[[Any], Any] = lambda file: file.write(buffer.getvalue())
        else:
            write = lambda file: torch.save(state, file)
        if self.latest_is_corrupt and self.path.exists():
            os.replace(self.path, self.folder / f"checkpoint.corrupt-{int(time.time())}.pth.tar")
        self.latest_is_corrupt = False
        atomic_write_bytes(self.path, write, previous=self.previous_path)

    def keep_epoch_copy(self, epoch: int) -> None:
        """Copy the latest checkpoint (written at the end of ``epoch``) to its epoch copy."""
        with open(self.path, "rb") as source:
            atomic_write_bytes(self.epoch_copy_path(epoch), lambda file: shutil.copyfileobj(source, file))

    def restore_epoch_copies(self, due: Iterable[int], state: Mapping[str, Any], path: Path) -> None:
        """Recreate the ``due`` epoch copies that are missing (a kill during the copy) when the loaded ``state``
        (from ``path``) is that epoch's end state; warn about the others, which cannot be recreated."""
        for epoch in due:
            copy = self.epoch_copy_path(epoch)
            if copy.exists():
                continue
            if int(state["epoch"]) == epoch and int(state.get("position", 0)) == 0:
                with open(path, "rb") as source:
                    atomic_write_bytes(copy, lambda file: shutil.copyfileobj(source, file))
                warnings.warn(f"Recreated {copy} from {path} (the copy was interrupted)")
            else:
                ended = next((h.get("iteration") for h in state.get("history", []) if h.get("epoch") == epoch), "?")
                warnings.warn(f"{copy} is missing (epoch {epoch} ended at iteration {ended}) and cannot be "
                              "recreated: the checkpoints now hold a later state")

    def stored_config(self, state: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The configuration in ``config.json``, else the one inside the checkpoint ``state``; None for a new run."""
        if self.config_path.exists():
            try:
                return json.loads(self.config_path.read_text())
            except (OSError, ValueError) as error:
                warnings.warn(f"{self.config_path} cannot be read ({error}); comparing with the "
                              "config stored in the checkpoint instead")
        return dict(state["config"]) if state is not None and "config" in state else None

    def check_config(self, config: Mapping[str, Any], stored: Mapping[str, Any] | None,
                     accept: Iterable[str] | str = ()) -> None:
        """Raise :class:`ConfigMismatchError` naming every difference between ``stored`` and ``config`` that is not
        in ``accept`` (key names, or "all")."""
        if stored is None or accept == "all":
            return
        accepted = {accept} if isinstance(accept, str) else set(accept)
        refused = {k: v for k, v in config_diff(stored, config).items() if k not in accepted}
        if refused:
            raise ConfigMismatchError(_mismatch_message(self.folder, refused))

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Store ``config`` as ``config.json`` and, one ``key: value`` a line, ``config.txt``."""
        text = json.dumps(config, indent=2)
        atomic_write_bytes(self.config_path, lambda f: f.write(text.encode()))
        txt = "\n".join(f"{k}: {v}" for k, v in config.items()) + "\n"
        atomic_write_bytes(self.folder / "config.txt", lambda f: f.write(txt.encode()))


class WallClock:
    """Accumulated wall-clock seconds of a run folder's training calls, in ``wall_time.json`` (survives resumes).

    A real-time run folder written before this file existed kept that total as the last ``wall_seconds`` of its
    ``train_log.jsonl``: it is read from there until the first :meth:`add`."""

    NAME = "wall_time.json"

    def __init__(self, folder: str | os.PathLike, start: float | None = None) -> None:
        self.folder = Path(folder)
        self.mark = time.monotonic() if start is None else start  # counted from here (a time.monotonic() value)

    def recorded(self) -> float:
        """The seconds stored in the folder (0 for a new run)."""
        try:
            return float(json.loads((self.folder / self.NAME).read_text())["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        seconds = 0.0
        try:
            for line in (self.folder / "train_log.jsonl").read_text().splitlines():
                try:
                    seconds = float(json.loads(line).get("wall_seconds", seconds))
                except (ValueError, AttributeError, TypeError):
                    continue
        except OSError:
            pass
        return seconds

    def total(self) -> float:
        """The stored seconds plus those since the last :meth:`add` (or the start)."""
        return self.recorded() + time.monotonic() - self.mark

    def add(self) -> float:
        """Store :meth:`total` (atomically) and count on from now; returns it."""
        now = time.monotonic()
        total = self.recorded() + (now - self.mark)
        self.mark = now
        atomic_write_bytes(self.folder / self.NAME, lambda f: f.write(json.dumps({"seconds": total}).encode()))
        return total
