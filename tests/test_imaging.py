"""Image loading (EXIF, modes, errors), saving and figures."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from imaging import ImageLoadError, load_image, resize_tensor, save_image, show_images
from PIL import Image


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=100)
    loaded = load_image(tmp_path / "rotated.jpg")
    assert loaded.shape == (1, 3, 40, 20)  # upright: portrait
    assert loaded[0, 2, 2, 10] > 0.8 and loaded[0, 0, 2, 10] < 0.2  # the left stripe is now on top


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA"])
def test_modes_are_converted_to_rgb(tmp_path, mode):
    if mode == "I;16":
        image = Image.fromarray(np.full((8, 12), 65535 // 2, dtype=np.uint16))
    else:
        image = Image.new("RGB", (12, 8), (100, 150, 200)).convert(mode)
    path = tmp_path / f"image_{mode.replace(';', '')}.png"
    image.save(path)
    loaded = load_image(path)
    assert loaded.shape == (1, 3, 8, 12) and loaded.dtype == torch.float32
    if mode == "I;16":
        assert abs(loaded.mean().item() - 0.5) < 0.01  # 16-bit mid grey stays mid grey


def test_transparent_pixels_composite_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").min().item() == 1.0


def test_errors_name_the_file(tmp_path):
    with pytest.raises(ImageLoadError, match="not found: .*missing.jpg"):
        load_image(tmp_path / "missing.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        load_image(tmp_path / "broken.jpg")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageLoadError, match="notes.txt"):
        load_image(tmp_path / "notes.txt")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_resize_by_longest_side(tmp_path):
    Image.new("RGB", (300, 200)).save(tmp_path / "wide.png")
    assert load_image(tmp_path / "wide.png", 150).shape == (1, 3, 100, 150)
    assert resize_tensor(torch.rand(1, 3, 20, 40), 10).shape == (1, 3, 5, 10)


def test_save_then_load_round_trip_and_no_partial_file(tmp_path):
    image = torch.rand(1, 3, 16, 24)
    path = save_image(image, tmp_path / "sub" / "out.png")
    torch.testing.assert_close(load_image(path), image, atol=1 / 255, rtol=0)
    assert [p.name for p in path.parent.iterdir()] == ["out.png"]  # no temporary file left behind


def test_show_images_titles_caption_and_file(tmp_path):
    figure = show_images([torch.rand(1, 3, 8, 8)] * 3, ["a", "b", "c"], suptitle="grid", caption="note",
                         columns=2, path=tmp_path / "grid.png")
    titles = [axis.get_title() for axis in figure.axes]
    assert titles[:3] == ["a", "b", "c"] and len(figure.axes) == 4
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_held_out_split_reproduces_the_splits_recorded_by_old_runs(tmp_path):
    """Both draws must stay: each reproduces the held-out files its method's runs recorded (the fixtures' configs,
    made before the redesign), and the other draw would give a different split for the same seed."""
    import json
    from pathlib import Path

    from imaging import split_held_out

    fixtures = Path(__file__).resolve().parent / "fixtures" / "old_layout"
    realtime_config = json.loads((fixtures / "realtime_run" / "config.json").read_text())
    cyclegan_config = json.loads((fixtures / "cyclegan_run" / "config.json").read_text())
    photos = [tmp_path / f"photo_{i:02d}.png" for i in range(10)]  # the real-time fixture's folder (test_old_checkpoints)
    domain = [tmp_path / f"photo{i}.png" for i in range(4)]  # the CycleGAN fixture's photos (test_cyclegan.make_domains)
    realtime_held = split_held_out(photos, realtime_config["options.holdout"], realtime_config["options.seed"],
                                   draw="torch")[1]
    cyclegan_held = split_held_out(domain, 1, cyclegan_config["seed"], draw="random")[1]
    assert [f.name for f in realtime_held] == realtime_config["held_out"]
    assert [f.name for f in cyclegan_held] == cyclegan_config["data.held_out_photos"]
    assert split_held_out(photos, 2, 0, draw="random")[1] != realtime_held
    assert split_held_out(domain, 1, 0, draw="torch")[1] != cyclegan_held


def test_held_out_split_by_names(tmp_path):
    from imaging import split_held_out

    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    train, held = split_held_out(tmp_path, names=["b.png"])
    assert [f.name for f in train] == ["a.png", "c.png"] and [f.name for f in held] == ["b.png"]
    with pytest.raises(FileNotFoundError, match="z.png"):
        split_held_out(tmp_path, names=["z.png"])
    with pytest.raises(ValueError, match="draw"):
        split_held_out(tmp_path, 1, draw="numpy")
