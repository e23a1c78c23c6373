"""Image folders: large ones stream (decode on access) with the very items a cached folder gives."""
from __future__ import annotations

import pytest
import torch
from imaging import ImageFolderDataset, cached_bytes_estimate
from PIL import Image


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(5):
        pixels = torch.rand(3, 30 + 4 * i, 44, generator=torch.Generator().manual_seed(i))
        Image.fromarray((pixels.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(root / f"p{i}.png")
    (root / "broken.jpg").write_bytes(b"not an image")
    return root


def items(dataset: ImageFolderDataset, seeds: list[int]) -> list[torch.Tensor]:
    out = []
    for index, seed in zip(range(len(dataset)), seeds):
        torch.manual_seed(seed)  # as training.SeededDataset does for each (seed, epoch, position)
        out.append(dataset[index])
    return out


def test_streamed_folder_gives_the_cached_items_and_keeps_nothing_in_memory(folder):
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        cached = ImageFolderDataset(folder, 24, 28, (0.5, 1.0))
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        streamed = ImageFolderDataset(folder, 24, 28, (0.5, 1.0), cache_gib=0.0)
    assert cached.cached and not streamed.cached and streamed.images == []
    assert len(streamed) == len(cached) == 5 and streamed.files == cached.files
    seeds = [11, 22, 33, 44, 55]
    for a, b in zip(items(cached, seeds), items(streamed, seeds)):
        assert torch.equal(a, b)  # same crops and flips: the random stream does not depend on the mode


def test_cache_threshold_and_a_file_corrupt_past_its_header(folder):
    assert cached_bytes_estimate(83_000, 384) > 50 * 2**30  # COCO train2014 at load_size 384 would need > 50 GB
    data = (folder / "p1.png").read_bytes()
    (folder / "p1.png").write_bytes(data[: len(data) // 2])  # header intact, pixel data cut
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        streamed = ImageFolderDataset(folder, 24, 28, train=False, cache_gib=0.0)
    assert len(streamed) == 5  # the header check cannot see it
    with pytest.warns(UserWarning, match=r"p1.png.*using the next image"):
        substitute = streamed[1]
    assert torch.equal(substitute, streamed[2]) and [p.name for p, _ in streamed.skipped] == ["broken.jpg", "p1.png"]
