"""Images and image data: load, check, resize, save and show images; colour transforms; training datasets.

Every image in this repository is a float tensor of shape (1, 3, H, W) (or (3, H, W)) with RGB values in [0, 1];
each network brings its own preprocessing.

* Colour control (Gatys, Bethge, Hertzmann & Shechtman, "Preserving Color in Neural Artistic Style Transfer", 2016):
  luminance-only transfer in YIQ space, and linear colour matching of the style image.
* Input checks shared by the option dataclasses and the entry points: each raises an error that names the parameter
  (or file) and says what is expected, instead of training silently on a wrong value or failing deep inside torch.
* Training data: folders of photos (real-time style transfer) and two unpaired domains (CycleGAN).

Random crops, scales and flips draw from ``torch``'s global RNG, so the ``nntools`` Experiment (which seeds every
sample from (seed, epoch, position)) makes them reproducible across interrupted runs."""
from __future__ import annotations

import math
import numbers
import os
import random
import textwrap
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from checkpoint import atomic_write_bytes
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

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


def pad_to_multiple(image: torch.Tensor, multiple: int, minimum: int = 0) -> torch.Tensor:
    """Pad the bottom and right edges so both sides are multiples of ``multiple`` and at least ``minimum`` px (the
    networks' downsamplings and paddings need it); reflection where it fits, else replication (tiny images)."""
    height, width = image.shape[-2:]
    pad_h = max(minimum, height + (-height) % multiple) - height
    pad_w = max(minimum, width + (-width) % multiple) - width
    if not pad_h and not pad_w:
        return image
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


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

    Each row is as tall as its tallest image at ``panel_size`` inches wide (landscape rows leave no blank band).
    ``interpolation="nearest"`` keeps small images sharp; ``title_room`` adds that many inches per row (two-line
    titles)."""
    import matplotlib.pyplot as plt

    count = len(images)
    columns = columns or count
    rows = (count + columns - 1) // columns
    aspects = [image.shape[-2] / image.shape[-1] for image in images]
    heights = [panel_size * min(max(aspects[r * columns:(r + 1) * columns]), 1.5) + title_room for r in range(rows)]
    total = sum(heights) + (0.4 if suptitle else 0.0) + (0.5 if caption else 0.1)
    # constrained layout keeps titles, suptitle and caption apart whatever the row heights
    figure, axes = plt.subplots(rows, columns, figsize=(panel_size * columns, total), squeeze=False,
                                gridspec_kw={"height_ratios": heights}, layout="constrained")
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < count:
            axis.imshow(tensor_to_pil(images[index]), interpolation=interpolation)
            if titles is not None:
                axis.set_title(titles[index], fontsize=title_fontsize)
    if suptitle:
        figure.suptitle(suptitle, fontsize=12)
    if caption:
        figure.supxlabel(textwrap.fill(caption, width=int(panel_size * columns * 13)), fontsize=9)
    return save_figure(figure, path, dpi)


def save_figure(figure, path: str | os.PathLike | None, dpi: int = 100):
    """Save a matplotlib figure to ``path`` (its folder created; nothing when None) and return the figure.
    A ``.jpg`` path is written at JPEG quality 90: grids of photographs are several times smaller than as PNG."""
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
        figure.savefig(path, dpi=dpi, bbox_inches="tight", **({"pil_kwargs": {"quality": 90}} if jpeg else {}))
    return figure


def saved_figure(figure, path: str | os.PathLike, width: int = 1000):
    """Close ``figure`` and return its saved file for display in a notebook (``width`` px on screen): a large grid is
    embedded as that file (e.g. a JPEG) instead of a second, lossless rendering."""
    import matplotlib.pyplot as plt
    from IPython.display import Image

    plt.close(figure)
    return Image(filename=str(path), width=width)


# NTSC YIQ (the matrix used by Gatys et al. 2016 for luminance-only transfer).
RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> YIQ (channel 0 is the luminance Y)."""
    return torch.einsum("ij,njhw->nihw", RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) YIQ -> RGB."""
    return torch.einsum("ij,njhw->nihw", YIQ_TO_RGB.to(image), image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Y channel (N, 1, H, W) of an RGB image."""
    return rgb_to_yiq(image)[:, :1]


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style luminance to the content's mean and standard deviation (Gatys et al. 2016, eq. 1)."""
    return (style_y - style_y.mean()) * (content_y.std() / style_y.std().clamp_min(1e-8)) + content_y.mean()


def combine_luminance(styled: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Take the luminance of ``styled`` and the I/Q colour channels of ``content`` (same size); RGB out, clamped."""
    yiq = rgb_to_yiq(content)
    yiq = torch.cat([luminance(styled), yiq[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def match_color(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Recolour ``source`` so its RGB mean and covariance equal ``target``'s (linear colour transfer).

    x' = C_t^{1/2} C_s^{-1/2} (x - mu_s) + mu_t with symmetric matrix square roots (the "image analogies" variant
    of Gatys et al. 2016, sec. 2.1), which keeps the result closest to the original colours among such maps.
    """
    def stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image.reshape(3, -1).double()
        mean = pixels.mean(dim=1, keepdim=True)
        centred = pixels - mean
        return mean, centred @ centred.T / pixels.shape[1] + eps * torch.eye(3, dtype=torch.float64, device=image.device)

    def sqrtm(matrix: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(matrix)
        values = values.clamp_min(eps) ** (-0.5 if inverse else 0.5)
        return vectors @ torch.diag(values) @ vectors.T

    if source.shape[0] != 1 or target.shape[0] != 1:
        raise ValueError("match_color works on single images (batch size 1)")
    mean_s, cov_s = stats(source[0])
    mean_t, cov_t = stats(target[0])
    transform = sqrtm(cov_t) @ sqrtm(cov_s, inverse=True)
    pixels = source[0].reshape(3, -1).double()
    result = transform @ (pixels - mean_s) + mean_t
    return result.reshape_as(source[0]).unsqueeze(0).to(source.dtype).clamp(0, 1)


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


def list_images(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Sorted image files under ``root``; a clear error if the folder is missing or holds no images."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder not found: {root} (expected a directory of {', '.join(IMAGE_EXTENSIONS)} files)")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in root.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(f"Image folder {root} contains no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def resize_shorter(image: Image.Image, shorter_side: int) -> Image.Image:
    """Resize so the shorter side equals ``shorter_side``, keeping the aspect ratio."""
    width, height = image.size
    scale = shorter_side / min(width, height)
    size = (max(shorter_side, round(width * scale)), max(shorter_side, round(height * scale)))
    return image.resize(size, Image.BICUBIC) if size != image.size else image


def cached_bytes_estimate(count: int, load_size: int) -> int:
    """Memory of ``count`` decoded RGB images whose shorter side is ``load_size``, assuming a 3:2 aspect ratio."""
    return count * load_size * round(load_size * 1.5) * 3


def _check_header(path: Path) -> None:
    """Raise ImageLoadError unless ``path`` opens as an image (header only: cheap, no decoding)."""
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - parsing the header is the check
    except (FileNotFoundError, IsADirectoryError, UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"Cannot read image file {path}: {error}") from error


class ImageFolderDataset(Dataset):
    """Square training crops from a folder of images, as (3, size, size) tensors in [0, 1].

    Each image is decoded, its shorter side resized to ``load_size`` (default ``size``). Folders whose decoded
    images fit in ``cache_gib`` GiB (estimated by :func:`cached_bytes_estimate`) keep them in memory; larger ones
    (COCO's 83k photos at load_size 384 would need ~55 GB) are *streamed*: only the headers are checked at start
    and each item is decoded on access (use ``num_workers`` to overlap it with training). The items are the same
    either way (decoding draws no random numbers), so the random stream of a run does not depend on the mode.
    In training mode a square crop covering a random fraction ``crop_scale`` of the shorter side is taken at a
    random position, resized to ``size`` and flipped with probability 1/2; in evaluation mode the centre crop.
    Unreadable files are skipped with one warning that counts them (``self.skipped`` lists them); a streamed file
    whose data turns out corrupt only when decoded is replaced by the next readable image, with a warning.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int = 256,
        load_size: int | None = None,
        crop_scale: tuple[float, float] = (1.0, 1.0),
        flip: bool = True,
        train: bool = True,
        files: list[Path] | None = None,
        cache_gib: float = 2.0,
    ) -> None:
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        self.root = Path(root)
        self.size, self.load_size = size, load_size or size
        if self.load_size < size:
            raise ValueError(f"load_size ({self.load_size}) must be at least size ({size})")
        self.crop_scale, self.flip, self.train = crop_scale, flip, train
        self.files: list[Path] = []
        self.images: list[Image.Image] = []
        self.skipped: list[tuple[Path, str]] = []
        candidates = files if files is not None else list_images(self.root)
        self.cached = cached_bytes_estimate(len(candidates), self.load_size) <= cache_gib * 2**30
        for path in candidates:
            try:
                if self.cached:
                    self.images.append(resize_shorter(open_rgb(path), self.load_size))
                else:
                    _check_header(Path(path))
                self.files.append(Path(path))
            except ImageLoadError as error:
                self.skipped.append((Path(path), str(error)))
        if self.skipped:
            names = ", ".join(p.name for p, _ in self.skipped[:5])
            warnings.warn(f"Skipped {len(self.skipped)} unreadable image(s) in {self.root}: {names}", stacklevel=2)
        if not self.files:
            raise ValueError(f"Image folder {self.root} has no readable images ({len(self.skipped)} unreadable)")

    def __len__(self) -> int:
        return len(self.files)

    def image(self, index: int) -> Image.Image:
        """The decoded image ``index``, shorter side ``load_size`` (from memory, or decoded now when streaming)."""
        if self.cached:
            return self.images[index]
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            try:
                return resize_shorter(open_rgb(path), self.load_size)
            except ImageLoadError as error:
                if all(p != path for p, _ in self.skipped):
                    self.skipped.append((path, str(error)))
                    warnings.warn(f"{error}; using the next image of {self.root} in its place", stacklevel=3)
        raise ValueError(f"Image folder {self.root} has no readable images ({len(self.skipped)} unreadable)")

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.image(index)
        width, height = image.size
        shorter = min(width, height)
        if self.train:
            low, high = self.crop_scale
            side = max(1, round(shorter * (low + (high - low) * torch.rand(()).item())))
            left = int(torch.randint(0, width - side + 1, ()).item())
            top = int(torch.randint(0, height - side + 1, ()).item())
        else:
            side = shorter
            left, top = (width - side) // 2, (height - side) // 2
        crop = image.crop((left, top, left + side, top + side))
        if side != self.size:
            crop = crop.resize((self.size, self.size), Image.BICUBIC)
        tensor = pil_to_tensor(crop)[0]
        if self.train and self.flip and torch.rand(()).item() < 0.5:
            tensor = tensor.flip(-1)
        return tensor


class UnpairedDataset(Dataset):
    """Two image domains without pairing (CycleGAN): item i is ``{"A": a[i % |A|], "B": b[random]}``.

    Accepts any two folders; ``from_cyclegan_layout(root, phase)`` reads the ``trainA``/``trainB``/``testA``/
    ``testB`` layout of the CycleGAN datasets. Images are resized (shorter side ``load_size``), randomly cropped to
    ``size`` and flipped, as in Zhu et al. (2017).
    """

    def __init__(
        self,
        root_a: str | os.PathLike,
        root_b: str | os.PathLike,
        size: int = 256,
        load_size: int | None = None,
        flip: bool = True,
        train: bool = True,
    ) -> None:
        load_size = load_size or round(size * 286 / 256)
        crop_scale = (size / load_size, size / load_size)
        self.domain_a = ImageFolderDataset(root_a, size, load_size, crop_scale, flip, train)
        self.domain_b = ImageFolderDataset(root_b, size, load_size, crop_scale, flip, train)
        self.train = train

    @classmethod
    def from_cyclegan_layout(cls, root: str | os.PathLike, phase: str = "train", **kwargs) -> "UnpairedDataset":
        """Read ``root/{phase}A`` and ``root/{phase}B`` (the layout of the CycleGAN datasets)."""
        root = Path(root)
        return cls(root / f"{phase}A", root / f"{phase}B", train=phase == "train", **kwargs)

    def __len__(self) -> int:
        return max(len(self.domain_a), len(self.domain_b))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image_a = self.domain_a[index % len(self.domain_a)]
        if self.train:
            index_b = int(torch.randint(0, len(self.domain_b), ()).item())
        else:
            index_b = index % len(self.domain_b)
        return {"A": image_a, "B": self.domain_b[index_b]}


# ------------------------------------------------------------------------------------------------------- data
class UnpairedFileDataset(UnpairedDataset):
    """:class:`UnpairedDataset` over explicit file lists (so held-out images can be left out)."""

    def __init__(self, files_a: Sequence[Path], files_b: Sequence[Path], size: int, load_size: int,
                 flip: bool = True, train: bool = True, crop_scale: tuple[float, float] | None = None
                 ) -> None:  # noqa: D107 - deliberately not calling super
        crop_scale = crop_scale or (size / load_size, size / load_size)
        root_a = Path(files_a[0]).parent if files_a else Path("A")
        root_b = Path(files_b[0]).parent if files_b else Path("B")
        self.domain_a = ImageFolderDataset(root_a, size, load_size, crop_scale, flip, train, files=list(files_a))
        self.domain_b = ImageFolderDataset(root_b, size, load_size, crop_scale, flip, train, files=list(files_b))
        self.train = train


def domain_files(folder: str | os.PathLike, domain: str) -> list[Path]:
    """Images in ``folder`` with an error naming the domain when the folder is missing or empty."""
    try:
        return list_images(folder)
    except (FileNotFoundError, ValueError) as error:
        raise type(error)(f"{domain} folder: {error}") from error


# ------------------------------------------------------------------------------------------------ hold-out
# How a method draws its held-out files; kept per method so that the split of every existing run (recorded in its
# config, split.json and the exported recipe) comes out the same: "random" is random.Random(seed).sample of the
# sorted indices (CycleGAN runs), "torch" the first ``count`` of torch.randperm with a seeded generator (real-time runs).
HELD_OUT_DRAWS = ("random", "torch")


def split_held_out(files: str | os.PathLike | Sequence[Path], count: int = 0, seed: int = 0, *,
                   names: Sequence[str] | None = None, draw: str = "random", parameter: str = "hold-out count"
                   ) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files), each sorted, of a folder's images or of a list of files.

    The held-out files are the ones called ``names`` (a split recorded by a run, e.g. for evaluation), or else
    ``count`` files drawn with ``seed`` as ``draw`` says (see ``HELD_OUT_DRAWS``); ``parameter`` names ``count`` in
    errors. Held-out files are never trained on."""
    folder = files if isinstance(files, (str, os.PathLike)) else (Path(files[0]).parent if files else "the list")
    files = list_images(files) if isinstance(files, (str, os.PathLike)) else sorted(files)
    if names is not None:
        held = set(names)
        missing = held - {f.name for f in files}
        if missing:
            raise FileNotFoundError(f"held-out image(s) not found in {folder}: {sorted(missing)}")
        return [f for f in files if f.name not in held], [f for f in files if f.name in held]
    integer(parameter, count, 0)
    if count >= len(files):
        raise ValueError(f"{parameter}={count} leaves no training images in {folder} ({len(files)} images): "
                         "at least one must remain for training")
    if draw == "torch":
        indices = set(torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:count].tolist())
    elif draw == "random":
        indices = set(random.Random(seed).sample(range(len(files)), count))
    else:
        raise ValueError(f"draw must be one of {HELD_OUT_DRAWS}, got {draw!r}")
    return [f for i, f in enumerate(files) if i not in indices], [f for i, f in enumerate(files) if i in indices]
