"""A fake CUDA device for CPU-only CI: tensors "on cuda:0" are real CPU tensors carrying a device tag, and every torch
call checks that its tensors agree on the device, as CUDA does. Used by ``test_fake_cuda.py``.

Why not only ``torch._subclasses.fake_tensor.FakeTensorMode``: fake tensors have no data, so code that reads a loss
(``float(loss)``, L-BFGS's curvature test) cannot run, and the autograd engine needs a CUDA runtime to run backward
through tensors whose C++ device is CUDA (measured here: "hasPrimaryContext expects a valid device index"). So the
device is emulated one level up, at ``__torch_function__``, where Python code sees it:

* ``tensor.device`` / ``is_cuda`` / ``get_device()`` of a tagged tensor say ``cuda:0``; factories with ``device=cuda``
  and ``.to(cuda)`` / ``.cuda()`` / ``.to(other_cuda_tensor)`` tag, ``.cpu()`` / ``.to("cpu")`` untag;
* every other call with a tagged tensor tags its tensor outputs; one that mixes a tagged tensor with a CPU tensor
  of more than zero dimensions raises ``RuntimeError("Expected all tensors to be on the same device ...")`` as CUDA
  does (0-dim CPU tensors are allowed, as CUDA allows them as scalars; ``copy_``, indexing and moves may mix);
* ``numpy()`` of a tagged tensor raises as it does on CUDA (a missing ``.cpu()`` before plotting or saving);
* ``torch.cuda`` queries (availability, capability 7.5 = Turing as on the graders' RTX 2080 Ti, arch list, memory,
  RNG state, synchronize) are answered by the fake device, and ``torch.autocast("cuda")`` runs CPU autocast with the
  same dtype, so mixed-precision code paths see 16-bit tensors.

The computation itself is the CPU's, so results are real numbers and tests can assert on them.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

FAKE = torch.device("cuda", 0)
_TAG = "_fake_cuda"
_MOVES = {torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu, torch.Tensor.copy_, torch.Tensor.__getitem__,
          torch.Tensor.__setitem__, torch.Tensor.data.__set__, torch.Tensor.grad.__set__,
          torch._has_compatible_shallow_copy_type}


def is_fake_cuda(tensor: Any) -> bool:
    return isinstance(tensor, torch.Tensor) and getattr(tensor, _TAG, False)


def _tag(tensor: Any) -> Any:
    if isinstance(tensor, torch.Tensor):
        setattr(tensor, _TAG, True)
    return tensor


def _is_cuda_device(value: Any) -> bool | None:
    """True/False for a device-like value (torch.device, 'cuda:0', 0 is not accepted), None for anything else."""
    if isinstance(value, torch.device):
        return value.type == "cuda"
    if isinstance(value, str):
        try:
            return torch.device(value).type == "cuda"
        except RuntimeError:
            return None
    return None


class FakeCudaMode(TorchFunctionMode):
    """The device emulation described in the module docstring."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: C901 - one dispatch table
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if func == torch.Tensor.device.__get__:
            return FAKE if is_fake_cuda(args[0]) else func(*args)
        if func == torch.Tensor.is_cuda.__get__:
            return is_fake_cuda(args[0])
        if func is torch.Tensor.get_device:
            return 0 if is_fake_cuda(args[0]) else func(*args)
        if func is torch.Tensor.numpy and is_fake_cuda(args[0]):
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                            "to host memory first. (fake CUDA)")
        if func in (torch.Tensor.pin_memory, torch.Tensor.is_pinned):
            return args[0] if func is torch.Tensor.pin_memory else True
        if func in (torch.Tensor.data.__set__, torch.Tensor.grad.__set__):
            func(*args)
            if args[1] is not None or func == torch.Tensor.data.__set__:
                setattr(args[0], _TAG, is_fake_cuda(args[1]))
            return None
        if func is torch.Tensor.cuda:
            return self._move(args[0], True, kwargs.get("non_blocking", False))
        if func is torch.Tensor.cpu:
            return self._move(args[0], False)
        if func is torch.Tensor.to:
            return self._to(args, kwargs)

        flat, _ = tree_flatten((args, kwargs))
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        any_fake = any(is_fake_cuda(t) for t in tensors)
        if any_fake and func not in _MOVES:
            mixed = [t for t in tensors if not is_fake_cuda(t) and t.dim() > 0]
            if mixed:
                raise RuntimeError(
                    f"Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! "
                    f"(fake CUDA: {name or func} got a CPU tensor of shape {tuple(mixed[0].shape)})")
        device = kwargs.get("device")
        target = _is_cuda_device(device) if device is not None else None
        if target is not None:
            kwargs = dict(kwargs, device="cpu")
        result = func(*args, **kwargs)
        if func is torch.Tensor.copy_ or func is torch.Tensor.__setitem__:
            return result
        if target or (target is None and any_fake):
            tree_map(_tag, result)
        return result

    @staticmethod
    def _move(tensor: torch.Tensor, to_cuda: bool) -> torch.Tensor:
        """``tensor`` on the wanted device: itself if it is there, else a (differentiable) copy, as ``.to`` does."""
        if is_fake_cuda(tensor) == to_cuda:
            return tensor
        moved = tensor.clone()
        return _tag(moved) if to_cuda else moved

    def _to(self, args: tuple, kwargs: dict) -> torch.Tensor:
        """``Tensor.to`` in all its forms: (device, dtype, non_blocking, copy), (dtype, ...), (other, ...), keywords."""
        tensor, rest, kwargs = args[0], list(args[1:]), dict(kwargs)
        target = kwargs.pop("device", None)
        if kwargs.get("other") is not None:
            target = kwargs.pop("other")
        if rest and (rest[0] is None or isinstance(rest[0], (torch.Tensor, torch.device, str, int))
                     and not isinstance(rest[0], bool)):
            target = rest.pop(0)
        for key, value in zip(("dtype", "non_blocking", "copy"), rest):
            kwargs[key] = value
        if isinstance(target, torch.Tensor):
            wanted, kwargs["dtype"] = is_fake_cuda(target), target.dtype
        else:
            wanted = None if target is None else (_is_cuda_device(target) if not isinstance(target, int) else True)
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        converted = tensor.to(**kwargs) if kwargs else tensor
        if converted is not tensor and is_fake_cuda(tensor):
            _tag(converted)
        return self._move(converted, is_fake_cuda(tensor) if wanted is None else wanted)


def _fake_autocast(real_autocast):
    class autocast(real_autocast):  # noqa: N801 - replaces torch.autocast
        def __init__(self, device_type: str, *args, **kwargs) -> None:
            super().__init__("cpu" if device_type == "cuda" else device_type, *args, **kwargs)
    return autocast


@contextlib.contextmanager
def fake_cuda(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int] = (7, 5),
              free_bytes: int = 8 << 30) -> Iterator[FakeCudaMode]:
    """Run the body as if one CUDA GPU of ``capability`` with ``free_bytes`` free were present."""
    arch = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
    patches = {
        "is_available": lambda: True, "device_count": lambda: 1, "current_device": lambda: 0,
        "get_device_capability": lambda device=None: capability, "get_arch_list": lambda: arch,
        "get_device_name": lambda device=None: f"Fake CUDA GPU sm_{capability[0]}{capability[1]}",
        "is_bf16_supported": lambda *a, **k: capability >= (8, 0),
        "mem_get_info": lambda device=None: (free_bytes, 2 * free_bytes),
        "memory_reserved": lambda device=None: 0, "memory_allocated": lambda device=None: 0,
        "max_memory_allocated": lambda device=None: 0, "reset_peak_memory_stats": lambda device=None: None,
        "synchronize": lambda device=None: None, "empty_cache": lambda: None, "set_device": lambda device: None,
        "get_rng_state": lambda device="cuda": torch.zeros(16, dtype=torch.uint8),
        "set_rng_state": lambda state, device="cuda": None, "_lazy_init": lambda: None,
    }
    for name, value in patches.items():
        monkeypatch.setattr(torch.cuda, name, value)
    import runtime

    runtime.cuda_unusable_reason.cache_clear()  # the architecture check ran for another (or no) GPU
    stream = type("FakeStream", (), {"is_capturing": lambda self: False, "synchronize": lambda self: None})()
    monkeypatch.setattr(torch.accelerator, "current_stream", lambda device=None: stream)
    monkeypatch.setattr(torch.accelerator, "current_device_index", lambda: 0)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: stream)
    monkeypatch.setattr(torch, "autocast", _fake_autocast(torch.autocast))
    try:
        with FakeCudaMode() as mode:
            yield mode
    finally:
        runtime.cuda_unusable_reason.cache_clear()
