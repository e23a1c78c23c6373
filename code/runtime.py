"""Where and how code runs: the device, the numeric precision, seeds, threads and the supported versions.

* Device: :func:`auto_device` / :func:`resolve_device` (CUDA when usable, then MPS, then CPU) and
  :func:`device_description` for recipes and benchmarks.
* Precision: ``"auto"`` resolves to bf16 autocast on GPUs and CPUs with native bfloat16 instructions, fp32 elsewhere
  (:func:`resolve_precision`); :func:`bf16_native` tells an AVX512-BF16/AMX CPU from one where bf16 is emulated.
* Seeds for reproducible runs (:func:`derive_seed`) and CPU threads for the demo (:func:`free_cpu_threads`).
* Start-up check of the Python and torch versions this code needs (README "Requirements").

Python >= 3.10: type aliases such as ``StyleChoice = int | str | ...`` (``realtime.py``, ``transformer_net.py``) are
evaluated at import time. torch >= 2.1: the oldest release whose APIs the code uses (``torch.load(weights_only=True)``
of checkpoints, CPU bf16 autocast, ``torch.mps`` RNG state); the newer ``torch.amp.GradScaler`` (2.3) and
``torch.onnx.export(dynamo=...)`` (2.5) are used only when present. Importing ``nntools``, ``gatys``, ``realtime``,
``transformer_net`` or ``demo`` runs :func:`check_versions`, so an old interpreter or torch stops with one clear
message instead of a TypeError deep in an import."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import random
import re
import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

try:  # tqdm is optional: without it there is simply no progress bar.
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # pragma: no cover - depends on the environment
    _tqdm = None




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
def auto_device() -> torch.device:
    """CUDA (the local rank's GPU under torchrun) if this torch build can run on it, then Apple MPS, then CPU.

    ``torch.cuda.is_available()`` alone is not enough: a wheel without kernels for the GPU's architecture (recent
    wheels dropped Pascal, sm_6x) fails at the first convolution with "no kernel image is available". Such a GPU
    is skipped with a warning saying why (see :func:`cuda_unusable_reason`).
    """
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        reason = cuda_unusable_reason(device.index)
        if reason is None:
            return device
        warnings.warn(f"{reason}; running on the CPU instead", stacklevel=2)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: torch.device | str | None = None) -> torch.device:
    """``device``, or :func:`auto_device` for None; a bare "cuda" gets the current GPU's index (what
    ``torch.cuda.mem_get_info`` on torch <= 2.4 and the per-device RNG calls need)."""
    if device is None:
        return auto_device()
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


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


@functools.lru_cache(maxsize=None)
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


def _dist_info() -> tuple[int, int]:
    """(rank, world_size); (0, 1) unless torch.distributed is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _seed_global_rngs(seed: int) -> None:
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


# --------------------------------------------------------------------------------------------------- training
def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s))"


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


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The one asked for, else CUDA if this torch build runs on the GPU, then MPS, then CPU
    (:func:`nntools.resolve_device`: the project's single device choice)."""
    return resolve_device(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s))"
