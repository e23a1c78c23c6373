"""Everything that makes a training folder safe to stop and resume: checkpoint files, RNG state, config diff, lock.

* Checkpoints are written atomically (temporary file, fsync, ``os.replace``), the previous good one is kept as
  ``checkpoint.prev.pth.tar``; :func:`first_non_finite` finds a NaN/inf in the state before it is saved.
* :func:`_capture_rng_state` / :func:`_restore_rng_state`: the global RNG states (Python, NumPy, torch, CUDA, MPS) a
  checkpoint carries for exact resume; :class:`CheckpointSchedule` says when a periodic checkpoint is due.
* :func:`_config_diff`: what changed between the saved ``config.json`` and this run's (changes must be accepted).
* The lock: an exclusive lock on a training folder: one live process writes checkpoints into an ``output_dir`` at a time.

The lock is a file ``LOCK`` holding the owner's pid, host and start time, created atomically (``O_CREAT|O_EXCL``).
A second process gets :class:`OutputDirLockedError` naming the holder. A lock left by a killed process (same host,
pid no longer running, or a different process now under that pid) is detected as stale and taken over with a
warning. Inside one process the lock is re-entrant (constructing an ``Experiment`` again on the same folder, as a
notebook resume does, is fine); it is released when the last holder is garbage collected or at interpreter exit.

Also :func:`stop_when_parent_dies`: a DDP worker whose launcher (``torchrun``) is killed stops instead of writing on."""
from __future__ import annotations

import atexit
import json
import math
import os
import random
import signal
import socket
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

try:  # tqdm is optional: without it there is simply no progress bar.
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # pragma: no cover - depends on the environment
    _tqdm = None

if TYPE_CHECKING:  # annotations only: nntools imports this module
    from nntools import TrainingModel




LOCK_NAME = "LOCK"


_held: dict[Path, int] = {}  # lock path -> number of live holders in this process


_guard = threading.Lock()


class OutputDirLockedError(RuntimeError):
    """Another live process trains into the same ``output_dir`` (the message names it)."""


def _process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux /proc), to tell a reused pid from the holder."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return start is None or _process_start(pid) in (None, start)


def _holder_text(holder: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("time", 0)))
    return f"pid {holder.get('pid')} on host {holder.get('host')!r} (since {since})"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _try_create(path: Path) -> bool:
    me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), "start": _process_start(os.getpid())}
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as file:
        file.write(json.dumps(me))
        file.flush()
        os.fsync(file.fileno())
    return True


def acquire(output_dir: str | os.PathLike, owner: object) -> weakref.finalize:
    """Lock ``output_dir`` for this process as long as ``owner`` lives; raise OutputDirLockedError if held.

    Returns the release handle: calling it releases this hold early (e.g. when the owner's construction fails)."""
    path = Path(output_dir).resolve() / LOCK_NAME
    with _guard:
        if _held.get(path):
            _held[path] += 1
        else:
            for _ in range(3):  # a stale lock is moved away, then created again atomically
                if _try_create(path):
                    break
                holder = _read(path)
                if holder is None:  # being written right now, or truncated by a kill during the write
                    try:
                        age = time.time() - path.stat().st_mtime
                    except FileNotFoundError:
                        continue
                    if age < 5:
                        time.sleep(0.2)
                        continue
                    holder = {}
                same_host = holder.get("host") == socket.gethostname()
                if holder and (not same_host or _alive(int(holder["pid"]), holder.get("start"))):
                    raise OutputDirLockedError(
                        f"{path.parent} is in use by {_holder_text(holder)}: two runs must not write into one "
                        f"output_dir. Stop that process or use another output_dir; if it is not running any more "
                        f"(e.g. on another machine sharing this folder), delete {path}.")
                warnings.warn(f"Taking over the stale lock {path} of {_holder_text(holder) if holder else 'an unknown process'} "
                              "(no longer running)")
                try:
                    os.replace(path, path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}"))
                    os.remove(path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}"))
                except FileNotFoundError:  # another process took it over first: try again
                    pass
            else:
                raise OutputDirLockedError(f"could not lock {path.parent}: {path} keeps changing (another process?)")
            _held[path] = 1
    return weakref.finalize(owner, _release, path)


def _release(path: Path) -> None:
    with _guard:
        count = _held.get(path, 0) - 1
        if count > 0:
            _held[path] = count
            return
        _held.pop(path, None)
        holder = _read(path)
        if holder and holder.get("pid") == os.getpid():
            try:
                os.remove(path)
            except OSError:
                pass


@atexit.register
def _release_all() -> None:
    for path in list(_held):
        _held[path] = 1
        _release(path)


_watchdog_started = False


def stop_when_parent_dies(interval: float = 0.5) -> None:
    """Start a daemon thread that SIGKILLs this process once its parent (e.g. the torchrun launcher) is gone.

    Checkpoint writes are atomic, so stopping at any moment loses at most the work since the last checkpoint,
    whereas a worker orphaned by a killed launcher would keep writing into a folder a restarted run also uses.
    """
    global _watchdog_started
    if _watchdog_started:
        return
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="stop-when-parent-dies", daemon=True).start()
    _watchdog_started = True


CHECKPOINT_NAME = "checkpoint.pth.tar"


PREV_CHECKPOINT_NAME = "checkpoint.prev.pth.tar"


CHECKPOINT_FORMAT = 1


# ----------------------------------------------------------------------------- errors
class ConfigMismatchError(ValueError):
    """The experiment's configuration differs from the one stored in ``output_dir``."""


class CheckpointError(RuntimeError):
    """Checkpoints exist but none can be loaded (or one does not fit the model)."""


def _plain(obj: Any) -> Any:
    """Convert tensors / numpy scalars to python numbers so that history is weights_only-safe."""
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.detach().cpu().tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _capture_rng_state(device: torch.device) -> dict[str, Any]:
    """Global RNG states (CPU and the training device) as tensors / lists / numbers."""
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


def _restore_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Inverse of :func:`_capture_rng_state`."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    elif "mps" in state and device.type == "mps":
        torch.mps.set_rng_state(state["mps"])


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (best effort: not possible on every OS / file system)."""
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


def _atomic_write_bytes(path: Path, write: Callable[[Any], None]) -> None:
    """Write via ``write(file)`` to ``path`` atomically: temp file, flush, fsync, os.replace."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def first_non_finite(model: "TrainingModel") -> str | None:
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


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.loads(json.dumps(_plain(value)))


def _optimizer_hyperparameters(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Hyper-parameters of every param group (the lr before any scheduler decay)."""
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


def _config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (stored, new)} for every key whose value differs ('<missing>' when absent)."""
    keys = list(old) + [k for k in new if k not in old]
    return {k: (old.get(k, "<missing>"), new.get(k, "<missing>"))
            for k in keys if old.get(k, "<missing>") != new.get(k, "<missing>")}
