"""Training data: folders of photos (real-time style transfer) and two unpaired domains (CycleGAN).

Random crops, scales and flips draw from ``torch``'s global RNG, so the ``nntools`` Experiment (which seeds every
sample from (seed, epoch, position)) makes them reproducible across interrupted runs.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from imaging import IMAGE_EXTENSIONS, ImageLoadError, open_rgb, pil_to_tensor


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
