"""Training data: folders of photos (real-time style transfer) and two unpaired domains (CycleGAN).

Random crops, scales and flips draw from ``torch``'s global RNG, so the ``nntools`` Experiment (which seeds every
sample from (seed, epoch, position)) makes them reproducible across interrupted runs.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from PIL import Image
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


class ImageFolderDataset(Dataset):
    """Square training crops from a folder of images, as (3, size, size) tensors in [0, 1].

    Each image is decoded once, its shorter side resized to ``load_size`` (default ``size``) and kept in memory.
    In training mode a square crop covering a random fraction ``crop_scale`` of the shorter side is taken at a
    random position, resized to ``size`` and flipped with probability 1/2; in evaluation mode the centre crop.
    Unreadable files are skipped with one warning that counts them (``self.skipped`` lists them).
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
        for path in files if files is not None else list_images(self.root):
            try:
                self.images.append(resize_shorter(open_rgb(path), self.load_size))
                self.files.append(Path(path))
            except ImageLoadError as error:
                self.skipped.append((Path(path), str(error)))
        if self.skipped:
            names = ", ".join(p.name for p, _ in self.skipped[:5])
            warnings.warn(f"Skipped {len(self.skipped)} unreadable image(s) in {self.root}: {names}", stacklevel=2)
        if not self.images:
            raise ValueError(f"Image folder {self.root} has no readable images ({len(self.skipped)} unreadable)")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
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
