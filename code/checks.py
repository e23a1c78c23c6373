"""Input checks shared by the option dataclasses and the entry points: each raises an error that names the parameter
(or file) and says what is expected, instead of training silently on a wrong value or failing deep inside torch."""
from __future__ import annotations

import math
import numbers
from typing import Any

import torch

__all__ = ["integer", "number", "image_tensor"]


def integer(name: str, value: Any, minimum: int | None = None, allow_none: bool = False) -> None:
    """``value`` is an int (not a bool or a float such as 2.5) >= ``minimum``; TypeError/ValueError naming ``name``."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer{' or None' if allow_none else ''}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def number(name: str, value: Any, minimum: float | None = None, positive: bool = False,
           maximum: float | None = None, allow_none: bool = False) -> None:
    """``value`` is a finite real number (>= ``minimum``, > 0 if ``positive``, <= ``maximum``)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number{' or None' if allow_none else ''}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")


def image_tensor(name: str, image: Any, min_side: int = 1, batch: bool = False) -> None:
    """An RGB image tensor as every module here expects: float, shape (1, 3, H, W) or (3, H, W) ((N, 3, H, W) with
    ``batch``), finite values in [0, 1] (a tiny tolerance for rounding), both sides >= ``min_side``."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor image (1, 3, H, W) in [0, 1], got {type(image).__name__}")
    if not image.is_floating_point():
        raise TypeError(f"{name} must be a float tensor with values in [0, 1], got dtype {image.dtype} "
                        "(divide 8-bit images by 255, or use imaging.load_image)")
    if image.dim() not in (3, 4) or image.shape[-3] != 3 or (image.dim() == 4 and image.shape[0] != 1 and not batch):
        shapes = "(N, 3, H, W) or (3, H, W)" if batch else "(1, 3, H, W) or (3, H, W)"
        raise ValueError(f"{name} must have shape {shapes}, got {tuple(image.shape)}")
    if min(image.shape[-2:]) < min_side:
        raise ValueError(f"{name} is {image.shape[-1]}x{image.shape[-2]} px; both sides must be >= {min_side} px")
    values = image.detach()
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or infinite pixel values")
    low, high = float(values.min()), float(values.max())
    if low < -1e-3 or high > 1 + 1e-3:
        hint = " (it looks like 0..255: divide by 255)" if high > 2 else ""
        raise ValueError(f"{name} must have values in [0, 1], got [{low:.4g}, {high:.4g}]{hint}")
