"""Bad inputs, table-driven: each case must raise the given error type with a message that names the parameter or
file (and what is expected). Nothing here trains for more than a moment; the command-line cases (one-line
``error: ...``, exit status 2) are in test_cli.py."""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any, Callable

import cli
import cyclegan
import gatys
import imaging
import nntools
import numpy as np
import pytest
import realtime
import runtime
import torch
import weights
from PIL import Image
from realtime import RealtimeOptions

ROOT = Path(__file__).resolve().parents[1]
CODE = ROOT / "code"
CONTENT = ROOT / "assets" / "carcassonne.jpg"


def tiny_realtime(**changes: Any) -> RealtimeOptions:
    return RealtimeOptions(**{"image_size": 32, "width": 0.25, "holdout": 2, **changes})


def image_file(tmp: Path, name: str, array: np.ndarray, mode: str | None = None) -> Path:
    path = tmp / name
    Image.fromarray(array, mode=mode).save(path)
    return path


def bomb_png(tmp: Path) -> Path:
    """A tiny PNG whose header claims 100000 x 100000 px."""
    path = tmp / "bomb.png"
    Image.new("RGB", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width and height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the chunk's CRC, so the header is valid
    path.write_bytes(bytes(data))
    return path


def nan_weights_model(tmp: Path) -> Path:
    from models import TransformerNet

    net = TransformerNet(n_styles=1, width=0.125, style_names=["a"])
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    weights.save_fp16_weights(net.state_dict(), "nan_model.pth", {"kind": "realtime", "styles": ["a"],
                             "architecture": net.config()}, assets_dir=tmp)
    return tmp / "nan_model.pth"


def photo_dir(tmp: Path, count: int = 4) -> Path:
    folder = tmp / "photos"
    folder.mkdir(exist_ok=True)
    for i in range(count):
        Image.fromarray((np.random.default_rng(i).random((24, 24, 3)) * 255).astype("uint8")).save(folder / f"{i}.png")
    return folder


class Regression(nntools.TrainingModel):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(2, 1)
        self.networks = {"net": self.net}
        self.optimizers = {"net": torch.optim.SGD(self.net.parameters(), lr=0.1)}


def experiment(out: Path) -> nntools.Experiment:
    data = torch.utils.data.TensorDataset(torch.zeros(8, 2), torch.zeros(8, 1))
    return nntools.Experiment(Regression(), data, output_dir=out, batch_size=2, device="cpu", progress=False)


def foreign_lock(out: Path, host: str = "elsewhere") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "LOCK").write_text(json.dumps({"pid": 1, "host": host, "time": 0}))


# (id, callable taking tmp_path, expected error type, substrings the message must contain)
CASES: list[tuple[str, Callable[[Path], Any], type[BaseException], tuple[str, ...]]] = [
    # --- real-time options
    ("rt_iterations_negative", lambda t: tiny_realtime(iterations=-1), ValueError, ("iterations", ">= 0")),
    ("rt_export_untrained", lambda t: realtime.train_realtime(t, {}, t / "run", tiny_realtime(iterations=0),
                                                              export_name="x"), ValueError, ("iterations=0", "untrained")),
    ("rt_iterations_float", lambda t: tiny_realtime(iterations=2.5), TypeError, ("iterations", "integer")),
    ("rt_batch_size_zero", lambda t: tiny_realtime(batch_size=0), ValueError, ("batch_size", ">= 1")),
    ("rt_style_weight_negative", lambda t: tiny_realtime(style_weight=-1.0), ValueError, ("style_weight", ">= 0")),
    ("rt_content_weight_nan", lambda t: tiny_realtime(content_weight=float("nan")), ValueError, ("content_weight", "finite")),
    ("rt_width_zero", lambda t: tiny_realtime(width=0.0), ValueError, ("width", "> 0")),
    ("rt_width_too_small", lambda t: tiny_realtime(width=0.001), ValueError, ("width", "channel")),
    ("rt_holdout_zero", lambda t: tiny_realtime(holdout=0), ValueError, ("holdout", ">= 1")),
    ("rt_learning_rate_zero", lambda t: tiny_realtime(learning_rate=0.0), ValueError, ("learning_rate", "> 0")),
    ("rt_style_layers_empty", lambda t: tiny_realtime(style_layers=()), ValueError, ("style_layers", "non-empty")),
    ("rt_style_layer_unknown", lambda t: tiny_realtime(style_layers=("relu9_9",)), ValueError, ("relu9_9", "style_layers")),
    ("rt_layer_weights_length", lambda t: tiny_realtime(style_layer_weights=(1.0,)), ValueError, ("style_layer_weights", "entries")),
    ("rt_image_size_tiny", lambda t: tiny_realtime(image_size=8), ValueError, ("image_size", ">= 16")),
    ("rt_load_size_below_size", lambda t: tiny_realtime(load_size=16), ValueError, ("load_size", ">= 32")),
    ("rt_crop_scale", lambda t: tiny_realtime(crop_scale=(0.8, 0.2)), ValueError, ("crop_scale",)),
    ("rt_sample_every_zero", lambda t: tiny_realtime(sample_every=0), ValueError, ("sample_every", ">= 1")),
    ("rt_amp_unknown", lambda t: tiny_realtime(amp="int8"), ValueError, ("amp", "bf16")),
    # --- CycleGAN options
    ("cg_ngf_zero", lambda t: cyclegan.CycleGANOptions(ngf=0), ValueError, ("ngf", ">= 1")),
    ("cg_batch_size_zero", lambda t: cyclegan.CycleGANOptions(batch_size=0), ValueError, ("batch_size", ">= 1")),
    ("cg_lr_negative", lambda t: cyclegan.CycleGANOptions(lr=-1e-4), ValueError, ("lr", "> 0")),
    ("cg_lambda_cycle_negative", lambda t: cyclegan.CycleGANOptions(lambda_cycle=-1.0), ValueError, ("lambda_cycle",)),
    ("cg_upsampling_unknown", lambda t: cyclegan.CycleGANOptions(upsampling="nearest"), ValueError, ("upsampling", "resize")),
    ("cg_size_not_multiple_of_4", lambda t: cyclegan.CycleGANOptions(size=130), ValueError, ("size", "multiple of 4")),
    ("cg_hold_out_negative", lambda t: imaging.split_held_out([Path("a.png"), Path("b.png")], -1), ValueError, ("hold-out", ">= 0")),
    # --- Gatys options and inputs
    ("ga_iterations_float", lambda t: gatys.GatysOptions(iterations=2.5), TypeError, ("iterations", "integer")),
    ("ga_style_layers_empty", lambda t: gatys.GatysOptions(style_layers=[]), ValueError, ("style_layers", "empty")),
    ("ga_style_weight_negative", lambda t: gatys.GatysOptions(style_weight=-1.0), ValueError, ("style_weight", ">= 0")),
    ("ga_size_tiny", lambda t: gatys.GatysOptions(size=8), ValueError, ("size", ">= 32")),
    ("ga_optimizer_unknown", lambda t: gatys.GatysOptions(optimizer="newton"), ValueError, ("optimizer", "lbfgs")),
    ("ga_content_0_255", lambda t: imaging.image_tensor("content image", torch.rand(1, 3, 32, 32) * 255), ValueError,
     ("content image", "[0, 1]", "255")),
    ("ga_content_nan", lambda t: imaging.image_tensor("content image", torch.full((1, 3, 8, 8), float("nan"))), ValueError,
     ("content image", "NaN")),
    ("ga_content_uint8", lambda t: imaging.image_tensor("content image", torch.zeros(1, 3, 8, 8, dtype=torch.uint8)),
     TypeError, ("content image", "float", "uint8")),
    # --- images on load
    ("img_missing", lambda t: imaging.load_image(t / "nope.jpg"), imaging.ImageLoadError, ("nope.jpg", "not found")),
    ("img_directory", lambda t: imaging.load_image(t), imaging.ImageLoadError, ("directory",)),
    ("img_not_an_image", lambda t: (t / "fake.png").write_bytes(b"text") and imaging.load_image(t / "fake.png"),
     imaging.ImageLoadError, ("fake.png", "Cannot read")),
    ("img_decompression_bomb", lambda t: imaging.load_image(bomb_png(t)), imaging.ImageTooLargeError, ("bomb.png",)),
    ("img_too_thin", lambda t: imaging.load_image(image_file(t, "thin.png", np.zeros((2, 4000, 3), np.uint8)), 256,
                                                             imaging.MIN_SIDE),
     imaging.ImageLoadError, ("thin.png", "256x1", ">= 16")),
    ("img_float_tiff_nan", lambda t: imaging.load_image(image_file(t, "nan.tif", np.full((20, 20), np.nan, np.float32), "F")),
     imaging.ImageLoadError, ("nan.tif", "NaN")),
    # --- outputs before writing
    ("out_nan_image", lambda t: imaging.save_image(torch.full((1, 3, 4, 4), float("nan")), t / "nan.png"), ValueError,
     ("nan.png", "NaN")),
    ("out_is_a_folder", lambda t: imaging.save_image(torch.zeros(1, 3, 4, 4), t), IsADirectoryError, ("folder",)),
    ("out_parent_is_a_file", lambda t: (t / "file").write_text("x") and imaging.save_image(torch.zeros(1, 3, 4, 4), t / "file" / "o.png"),
     NotADirectoryError, ("file", "not a folder")),
    ("out_unknown_extension", lambda t: imaging.save_image(torch.zeros(1, 3, 4, 4), t / "o.xyz"), ValueError, ("o.xyz", ".xyz")),
    ("out_folder_is_a_file", lambda t: (t / "f").write_text("x") and realtime.stylize_folder(t, t / "f", "x"),
     NotADirectoryError, ("f", "not a folder")),
    # --- models and styles
    ("model_pth_misspelled", lambda t: realtime.load_style_model(t / "realtime_4stlyes.pth"), FileNotFoundError,
     ("realtime_4stlyes.pth", "not found")),
    ("model_unknown_style", lambda t: realtime.load_style_model("mona_lisa"), KeyError, ("mona_lisa", "Available styles")),
    ("model_nan_weights", lambda t: realtime.load_style_model(nan_weights_model(t)), weights.WeightsError, ("nan_model.pth", "NaN")),
    ("stylize_uint8", lambda t: realtime.stylize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.nn.Linear(1, 1)),
     TypeError, ("image", "float")),
    ("stylize_0_255", lambda t: realtime.stylize(torch.rand(1, 3, 8, 8) * 255, torch.nn.Linear(1, 1)), ValueError, ("image", "[0, 1]")),
    ("style_blend_not_a_number", lambda t: cli.parse_weights(["a=abc"], "--style"), ValueError, ("--style", "'a'", "abc")),
    ("holdout_all_photos", lambda t: imaging.split_held_out(photo_dir(t), 4, parameter="holdout"), ValueError, ("holdout=4", "photos")),
    # --- training folders
    ("exp_output_dir_is_file", lambda t: (t / "f").write_text("x") and experiment(t / "f"), FileExistsError, ("f", "not a folder")),
    ("exp_locked_by_other_host", lambda t: foreign_lock(t / "run") or experiment(t / "run"), runtime.OutputDirLockedError,
     ("run", "pid 1", "elsewhere", "LOCK")),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(case, tmp_path: Path) -> None:
    _, call, error_type, words = case
    with pytest.raises(error_type) as caught:
        call(tmp_path)
    message = str(caught.value.args[0] if isinstance(caught.value, KeyError) else caught.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_there_are_at_least_40_cases() -> None:
    assert len(CASES) >= 40


def test_float_tiff_in_0_1_loads_with_its_values(tmp_path: Path) -> None:
    """Mode "F" images hold 0..1 floats: 0.5 grey must load as 0.5, not black."""
    path = image_file(tmp_path, "grey.tif", np.full((20, 20), 0.5, np.float32), "F")
    image = imaging.load_image(path)
    assert image.shape == (1, 3, 20, 20) and torch.allclose(image, torch.full_like(image, 128 / 255))


def test_read_only_output_folder_is_refused_before_writing(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            imaging.save_image(torch.zeros(1, 3, 4, 4), folder / "o.png")
    finally:
        folder.chmod(0o700)
