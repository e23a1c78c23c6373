"""Where and how code runs: the device, the numeric precision, seeds, threads and the supported versions.

* Device: :func:`pick_device` (the one asked for, else CUDA when usable, then MPS, then CPU) and
  :func:`device_description` for recipes and benchmarks.
* Precision: ``"auto"`` resolves to bf16 autocast on GPUs and CPUs with native bfloat16 instructions, fp32 elsewhere
  (:func:`resolve_precision`); :func:`bf16_native` tells an AVX512-BF16/AMX CPU from one where bf16 is emulated;
  :func:`resolve_amp` and :func:`grad_scaler` for mixed-precision training.
* Seeds for reproducible runs (:func:`derive_seed`, :func:`seed_global_rngs`) and CPU threads for the demo
  (:func:`free_cpu_threads`).
* :func:`return_large_cpu_buffers`: freed CPU buffers of 16 MiB or more go back to the OS (Gatys' peak memory).
* :func:`acquire_output_dir`, the lock that lets one live process write into a training folder.
* Start-up check of the Python and torch versions this code needs (README "Requirements").

The DDP ranks' agreement and the seeded data order are in :mod:`training`.

Python >= 3.10: type aliases such as ``StyleChoice = int | str | ...`` (``realtime.py``) are evaluated at import
time. torch >= 2.1: the oldest release whose APIs the code uses (``torch.load(weights_only=True)`` of checkpoints,
CPU bf16 autocast, ``torch.mps`` RNG state); the newer ``torch.amp.GradScaler`` (2.3) and
``torch.onnx.export(dynamo=...)`` (2.5) are used only when present. Importing any module that runs a network
(``nntools``, ``training``, ``gatys``, ``realtime``, ``cyclegan``, ``adain``, ``demo``, ``cli``) runs
:func:`check_versions`, so an old interpreter or torch stops with one clear message instead of a TypeError deep in an
import."""
from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import os
import platform
import random
import re
import socket
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

MIN_PYTHON = (3, 10)


MIN_TORCH = (2, 1)


class UnsupportedVersionError(RuntimeError):
    """The running Python or torch is older than this code supports."""


def parse_version(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: '2.5.0a0+git1234' -> (2, 5, 0), '2.14.1+cu130' -> (2, 14, 1)."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
    if not match:
        raise ValueError(f"not a version string: {text!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def version_problems(python: tuple[int, ...] | None = None, torch_version: str | None = None) -> list[str]:
    """What is too old: ``python`` (default: this interpreter) and ``torch_version`` (default: the installed torch;
    a missing torch is not reported here: ``make deps`` installs it, and ``import torch`` says so itself)."""
    python = tuple(sys.version_info[:3]) if python is None else tuple(python)
    problems = []
    if python[:2] < MIN_PYTHON:
        problems.append(f"Python {'.'.join(map(str, python))} is too old: this code needs Python >= "
                        f"{'.'.join(map(str, MIN_PYTHON))} (run it with e.g. python3.11, or `PYTHON=python3.11 make test`)")
    if torch_version is None:
        try:
            import torch
        except ImportError:
            return problems
        torch_version = torch.__version__
    if parse_version(torch_version)[:2] < MIN_TORCH:
        problems.append(f"torch {torch_version} is too old: this code needs torch >= {'.'.join(map(str, MIN_TORCH))} "
                        "(pip install --upgrade torch torchvision, with the wheel matching your CUDA version)")
    return problems


def check_versions(python: tuple[int, ...] | None = None, torch_version: str | None = None) -> None:
    """Raise :class:`UnsupportedVersionError` listing every version problem (nothing when all is supported)."""
    problems = version_problems(python, torch_version)
    if problems:
        raise UnsupportedVersionError("; ".join(problems))


check_versions()


# ----------------------------------------------------------------------------- helpers
def pick_device(device: torch.device | str | None = None) -> torch.device:
    """The project's one device choice: ``device`` when given (a bare "cuda" gets the current GPU's index, which
    ``torch.cuda.mem_get_info`` on torch <= 2.4 and the per-device RNG calls need), else CUDA (the local rank's GPU
    under torchrun) if this torch build can run on it, then Apple MPS, then CPU.

    ``torch.cuda.is_available()`` alone is not enough: a wheel without kernels for the GPU's architecture (recent
    wheels dropped Pascal, sm_6x) fails at the first convolution with "no kernel image is available". Such a GPU
    is skipped with a warning saying why (see :func:`cuda_unusable_reason`).
    """
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        return device
    if torch.cuda.is_available():
        cuda = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        reason = cuda_unusable_reason(cuda.index)
        if reason is None:
            return cuda
        warnings.warn(f"{reason}; running on the CPU instead", stacklevel=2)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so that wall times measure it; no-op elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def arch_supported(capability: tuple[int, int], arch_list: Iterable[str]) -> bool:
    """True if a build compiled for ``arch_list`` (``torch.cuda.get_arch_list()``) runs on a GPU of ``capability``.

    CUDA's compatibility rules: a cubin ``sm_XY`` runs on devices of the same major version X and minor >= Y; PTX
    ``compute_XY`` is compiled just in time for any device >= X.Y. An empty list (unknown build) counts as supported.
    """
    arch_list = list(arch_list)
    if not arch_list:
        return True
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        if not digits.rstrip("af").isdigit():
            continue
        number = int(digits.rstrip("af"))
        major, minor = divmod(number, 10)
        if kind == "sm" and major == capability[0] and minor <= capability[1]:
            return True
        if kind == "compute" and (major, minor) <= tuple(capability):
            return True
    return False


@functools.cache
def cuda_unusable_reason(index: int = 0) -> str | None:
    """Why CUDA device ``index`` cannot run this torch build (None if it can): architecture check, then one tiny op."""
    capability = tuple(torch.cuda.get_device_capability(index))
    arch_list = torch.cuda.get_arch_list()
    name = torch.cuda.get_device_name(index)
    if not arch_supported(capability, arch_list):
        return (f"CUDA GPU {index} ({name}, compute capability {capability[0]}.{capability[1]}) is not supported by "
                f"this torch {torch.__version__} build (compiled for {' '.join(arch_list)}); install a torch wheel "
                "built for it (e.g. an older CUDA 11.8/12.1 wheel for Pascal GPUs)")
    try:  # the architecture list can be right and the driver still too old, or the GPU busy in exclusive mode
        (torch.ones(8, device=torch.device("cuda", index)) * 2).sum().item()
    except RuntimeError as error:
        return f"CUDA GPU {index} ({name}) fails a test operation ({str(error).splitlines()[0]})"
    return None


def bf16_supported(device: torch.device | str) -> bool:
    """Whether bfloat16 autocast runs on ``device`` at all: any CPU (natively only with AVX512-BF16 or AMX, see
    :func:`cpu_bf16_native`), CUDA GPUs of compute capability >= 8.0 (Ampere; older ones emulate it far slower than
    fp32, older torch raises)."""
    device = torch.device(device)
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return tuple(torch.cuda.get_device_capability(device)) >= (8, 0)
    return False


def cpu_bf16_native(cpu_flags: str | None = None) -> bool:
    """Whether this CPU has bfloat16 instructions (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo's flags).

    Without them oneDNN falls back to a slow reference path: on a 2-core AVX2-only AMD EPYC, a 64-channel 3x3
    convolution's forward + backward took 9.1 s in bf16 autocast against 0.23 s in fp32 (40x slower, measured).
    ``cpu_flags`` (the flags line) is for tests; elsewhere than Linux the answer is False (fp32 is the safe choice).
    """
    if cpu_flags is None:
        try:
            with open("/proc/cpuinfo") as cpuinfo:
                cpu_flags = next((line for line in cpuinfo if line.startswith("flags")), "")
        except OSError:
            return False
    flags = set(cpu_flags.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def bf16_native(device: torch.device | str) -> bool:
    """Whether bfloat16 is fast on ``device``: a CPU with :func:`cpu_bf16_native`, or a CUDA GPU with bf16 units."""
    device = torch.device(device)
    return cpu_bf16_native() if device.type == "cpu" else bf16_supported(device)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The inference/optimisation precision that runs on ``device`` for ``precision``: "fp32", "bf16" or "fp16".

    "auto": bf16 autocast where the hardware runs it natively (:func:`bf16_native`: CPUs with AVX512-BF16 or AMX, CUDA
    compute capability >= 8.0), fp32 elsewhere. fp16 on pre-Ampere CUDA GPUs would be chosen only where a benchmark
    showed its loss within 3 % of fp32; no such benchmark exists yet, so auto is fp32 there (ask for "fp16" to use
    their fp16 units). An explicit "fp16" off CUDA, or "bf16" where :func:`bf16_supported` is False, warns and runs
    fp32; "bf16" on a CPU without bf16 instructions runs as asked (emulated, ~40x slower here) with a warning.
    Autocast only changes the networks' passes: losses and Gram matrices are computed in fp32 (``losses``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(repr(p) for p in PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "auto":
        return "bf16" if device.type in ("cpu", "cuda") and bf16_native(device) else "fp32"
    if precision == "fp16" and device.type != "cuda":
        warnings.warn(f"precision='fp16' needs a CUDA GPU; running in fp32 on {device}", stacklevel=3)
        return "fp32"
    if precision == "bf16" and not bf16_supported(device):
        warnings.warn(f"precision='bf16' is not native on {device}; running in fp32 "
                      "(precision='fp16' uses a CUDA GPU's fp16 units)", stacklevel=3)
        return "fp32"
    if precision == "bf16" and not bf16_native(device):
        warnings.warn("precision='bf16' on a CPU without bfloat16 instructions (no avx512_bf16/amx_bf16) is emulated, "
                      "about 40x slower than fp32; running emulated bf16 as asked (precision='auto' runs fp32 here)",
                      stacklevel=3)
    return precision


def precision_autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Autocast for a precision already resolved by :func:`resolve_precision` (fp32: autocast off)."""
    device = torch.device(device)
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def grad_scaler(device_type: str, enabled: bool) -> Any:
    """``torch.amp.GradScaler(device_type, enabled=...)``; on torch < 2.3 (no ``torch.amp.GradScaler``) the CUDA
    one, which is all loss scaling needs there (fp16 is CUDA-only) and is harmless when disabled."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device_type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled and device_type == "cuda")


def to_device(obj: Any, device: torch.device | str, non_blocking: bool = True) -> Any:
    """Move tensors inside (nested) tuples, lists and dicts to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        moved = [to_device(v, device, non_blocking) for v in obj]
        return type(obj)(*moved) if hasattr(obj, "_fields") else type(obj)(moved)
    return obj


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (stable across processes)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def seed_global_rngs(seed: int) -> None:
    """Seed the global Python, NumPy and torch generators (a fresh training run starts from ``seed``)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- models
def resolve_amp(amp: bool | str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp``: False/None -> none; True or "fp16" -> float16 (CUDA only, with loss scaling;
    elsewhere a warning and float32); "bf16" -> bfloat16 where :func:`bf16_supported` (measured 1.7x faster
    real-time training on an AVX-512-bf16 CPU, see README; elsewhere a warning and float32)."""
    if amp is None or amp is False or amp == "":
        return None
    if amp is True or amp == "fp16":
        if device.type == "cuda":
            return torch.float16
        warnings.warn(f"amp={amp!r} (float16) needs CUDA; on {device.type} training stays in float32 "
                      "(amp='bf16' works on CPUs)")
        return None
    if amp == "bf16":
        if bf16_supported(device):
            if not bf16_native(device):
                warnings.warn("amp='bf16' on a CPU without bfloat16 instructions (no avx512_bf16/amx_bf16) is emulated "
                              "and can be 10-40x slower than float32; prefer amp=False here")
            return torch.bfloat16
        warnings.warn(f"amp='bf16' needs a CPU or a CUDA GPU of compute capability >= 8.0; on {device} training "
                      "stays in float32 (amp='fp16' uses this GPU's fp16 units)")
        return None
    raise ValueError(f"amp must be False, True, 'fp16' or 'bf16', got {amp!r}")


# ----------------------------------------------------------------------------- descriptions
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what :mod:`platform` knows)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def device_description(device: torch.device | str | None = None) -> str:
    """What runs the code, for recipes and benchmark reports: "cuda (<GPU name>)", or "cpu (<CPU model>, <cores>
    cores, <n> thread(s))" with torch's thread count; None: the device :func:`pick_device` chooses."""
    device = pick_device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type != "cpu":
        return device.type
    return f"cpu ({cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} thread(s))"


def free_cpu_threads() -> int:
    """Cores not busy with other jobs (by the 1-minute load average), at least 1.

    Measured on a 2-core machine with one core busy: inside a Jupyter kernel, 2 threads made each L-BFGS
    iteration about 8x slower than 1 thread (every small parallel op waits for the busy core).
    """
    cores = os.cpu_count() or 1
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
LARGE_BUFFER_BYTES = 16 << 20


@functools.lru_cache(maxsize=None)
def return_large_cpu_buffers(threshold: int = LARGE_BUFFER_BYTES) -> bool:
    """Have glibc serve every allocation of ``threshold`` bytes or more with its own mmap, so that a freed
    activation or gradient of that size goes back to the OS at once. Process-wide; True where it applied (Linux with
    glibc).

    Why: glibc raises its mmap threshold to the size of the largest mmapped block freed so far (up to 32 MiB), after
    which the large activations of a VGG pass come from the heap, and the heap holds on to the holes between them.
    Measured on Gatys at 512 x 384 px (2 threads, the work of ``bench/bench_gatys_peer.py``, 2-core EPYC; peak RSS
    does not depend on load, the times are from idle runs), peak RSS / s per iteration: glibc's default 1,350-1,384
    MiB / 1.01 s; 16 MiB 1,320-1,344 MiB / 0.89-0.96 s; 1 MiB 1,247 MiB / 1.28 s, because every fresh mapping is paid
    for in page faults. 16 MiB keeps the fast path."""
    if sys.platform != "linux":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold)))
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        return False


# ----------------------------------------------------------------------------- the output folder's lock
# A file ``LOCK`` holding the owner's pid, host and start time, created atomically (``O_CREAT|O_EXCL``): one live
# process writes checkpoints into an ``output_dir`` at a time. A second one gets OutputDirLockedError naming the
# holder. A lock left by a killed process (same host, pid no longer running, or a different process now under that
# pid) is stale and taken over with a warning. Inside one process the lock is re-entrant (constructing an
# Experiment again on the same folder, as a notebook resume does, is fine); it is released when the last holder is
# garbage collected or at interpreter exit.
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


def acquire_output_dir(output_dir: str | os.PathLike, owner: object) -> weakref.finalize:
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
