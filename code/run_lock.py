"""An exclusive lock on a training folder: one live process writes checkpoints into an ``output_dir`` at a time.

The lock is a file ``LOCK`` holding the owner's pid, host and start time, created atomically (``O_CREAT|O_EXCL``).
A second process gets :class:`OutputDirLockedError` naming the holder. A lock left by a killed process (same host,
pid no longer running, or a different process now under that pid) is detected as stale and taken over with a
warning. Inside one process the lock is re-entrant (constructing an ``Experiment`` again on the same folder, as a
notebook resume does, is fine); it is released when the last holder is garbage collected or at interpreter exit.

Also :func:`stop_when_parent_dies`: a DDP worker whose launcher (``torchrun``) is killed stops instead of writing on.
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

__all__ = ["OutputDirLockedError", "acquire", "stop_when_parent_dies"]

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
