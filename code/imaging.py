"""Image I/O and figures: load any common image as an RGB tensor in [0, 1], save safely, show labelled grids.

Every image in this repository is a float tensor of shape (1, 3, H, W) (or (3, H, W)) with RGB values in [0, 1];
each network brings its own preprocessing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from assets import atomic_write_bytes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


MAX_PIXELS = 80_000_000  # larger images are refused before decoding (PIL's decompression-bomb limit is ~89 MP)
MIN_SIDE = 16  # the networks need both sides >= 16 px (VGG's four poolings; the transform net's two downsamplings)


class ImageLoadError(ValueError):
    """An image file is missing, unsupported or corrupt; the message names the file."""


class ImageTooLargeError(ImageLoadError):
    """An image (or its header's claim) exceeds :data:`MAX_PIXELS`; the message names the file and its size."""


def pil_to_rgb(image: Image.Image) -> Image.Image:
    """Convert greyscale, 16-bit, palette, CMYK and alpha images to 8-bit RGB (alpha composited on white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if not np.isfinite(array).all():
            raise ValueError(f"the {image.mode} image contains NaN or infinite values")
        if image.mode == "F" and array.min() >= 0 and array.max() <= 1.0:
            high = 1.0  # floating-point images (e.g. 32-bit TIFF) store 0..1
        else:
            high = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / high * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Open an image file as an upright (EXIF-rotated) 8-bit RGB PIL image, with a clear error naming the file."""
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"Image file not found: {path}")
    if path.is_dir():
        raise ImageLoadError(f"Expected an image file but got a directory: {path}")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageTooLargeError(f"Image file {path} is {image.width}x{image.height} px "
                                         f"({image.width * image.height / 1e6:.0f} MP); at most {MAX_PIXELS / 1e6:.0f} "
                                         "MP are accepted (resize it first)")
            image.load()
            image = ImageOps.exif_transpose(image)
            return pil_to_rgb(image)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"Image file {path}: {error}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(
            f"Cannot read image file {path}: {error}. Expected a readable image "
            f"({', '.join(IMAGE_EXTENSIONS)})."
        ) from error


def resize_longest(image: Image.Image, longest_side: int | None) -> Image.Image:
    """Resize so the longer side equals ``longest_side`` (aspect ratio kept); ``None`` keeps the size."""
    if longest_side is None:
        return image
    if longest_side < 16:
        raise ValueError(f"size must be at least 16 pixels, got {longest_side}")
    width, height = image.size
    scale = longest_side / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(new_size, Image.LANCZOS) if new_size != image.size else image


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB image -> float tensor (1, 3, H, W) in [0, 1]."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """Float tensor (1, 3, H, W) or (3, H, W) in [0, 1] -> PIL RGB image (values clamped, rounded)."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected an image tensor of shape (3, H, W), got {tuple(image.shape)}")
    array = image.detach().float().clamp(0, 1).mul(255).add(0.5).floor().byte().cpu()
    if array.shape[0] == 1:
        array = array.expand(3, -1, -1)
    return Image.fromarray(array.permute(1, 2, 0).numpy(), mode="RGB")


def load_image(path: str | os.PathLike, size: int | None = None, min_side: int = 1) -> torch.Tensor:
    """Load an image file as a (1, 3, H, W) RGB tensor in [0, 1], resized so its longest side is ``size``;
    an image whose shorter side then falls below ``min_side`` (e.g. :data:`MIN_SIDE` for the networks) is refused."""
    image = resize_longest(open_rgb(path), size)
    if min(image.size) < min_side:
        raise ImageLoadError(f"Image file {path} gives {image.width}x{image.height} px"
                             f"{f' at longest side {size}' if size else ''}; both sides must be >= {min_side} px "
                             "(crop very elongated images, or use a larger size)")
    return pil_to_tensor(image)


def check_output_file(path: str | os.PathLike) -> Path:
    """Before computing anything: ``path`` can be written as an image file (error naming it otherwise)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {path} is a folder; give an image file name (e.g. {path / 'out.png'})")
    suffix = path.suffix.lower()
    if suffix and suffix not in Image.registered_extensions():
        raise ValueError(f"output {path}: unknown image extension {suffix!r} (use .png or .jpg)")
    check_output_dir(path.parent)
    return path


def check_output_dir(directory: str | os.PathLike) -> Path:
    """``directory`` is (or can be created as) a writable folder; error naming it otherwise."""
    directory = Path(directory)
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"output folder {directory}: {existing} exists and is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {existing} is not writable")
    return directory


def resize_tensor(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize a (N, 3, H, W) tensor: an int sets the longest side, a pair sets (H, W). Antialiased bilinear."""
    height, width = image.shape[-2:]
    if isinstance(size, int):
        scale = size / max(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if tuple(size) == (height, width):
        return image
    return F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def save_image(image: torch.Tensor, path: str | os.PathLike, quality: int = 95) -> Path:
    """Save an image tensor atomically (temporary file, then rename): an existing file is never half-written."""
    path = check_output_file(path)
    if not bool(torch.isfinite(image.detach()).all()):
        raise ValueError(f"refusing to write {path}: the image contains NaN or infinite values "
                         "(it would be saved as black pixels)")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower() or ".png"
    kwargs = {"quality": quality} if suffix in (".jpg", ".jpeg") else {}
    image_format = Image.registered_extensions().get(suffix, "PNG")
    atomic_write_bytes(path, lambda file: tensor_to_pil(image).save(file, format=image_format, **kwargs))
    return path


def show_images(
    images: Sequence[torch.Tensor],
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    caption: str | None = None,
    columns: int | None = None,
    panel_size: float = 3.5,
    path: str | os.PathLike | None = None,
    interpolation: str | None = None,
    title_fontsize: float = 10,
    title_room: float = 0.0,
    dpi: int = 110,
):
    """Show images side by side (or in a grid) with titles; optionally save the figure. Returns the figure.

    ``interpolation="nearest"`` keeps small images sharp; ``title_room`` adds that many inches per row (two-line
    titles)."""
    import matplotlib.pyplot as plt

    count = len(images)
    columns = columns or count
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(panel_size * columns, (panel_size + title_room) * rows + 0.6),
                                squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < count:
            axis.imshow(tensor_to_pil(images[index]), interpolation=interpolation)
            if titles is not None:
                axis.set_title(titles[index], fontsize=title_fontsize)
    if suptitle:
        figure.suptitle(suptitle, fontsize=12)
    if caption:
        figure.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=9, wrap=True)
    figure.tight_layout(rect=(0, 0.04 if caption else 0, 1, 1))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=dpi, bbox_inches="tight")
    return figure
