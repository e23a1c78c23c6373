"""The CUDA code paths on a CPU-only machine: every main path runs on a fake CUDA GPU (``fake_cuda.py``: tensors tagged
cuda:0, computed on the CPU) that fails on any CPU/CUDA mix, as a real GPU would. Sizes are tiny: these tests check
device handling and that the paths run end to end, with finite numbers; the maths is tested elsewhere.

Also one check with PyTorch's own ``FakeTensorMode`` (fake CUDA tensors without data) on the forward-only paths, so
the device rules are PyTorch's and not only this emulation's.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import ablations
import cli
import cyclegan
import figures
import evaluation
import imaging
import pytest
import realtime
import runtime
import torch
from cyclegan import CycleGANModel, CycleGANOptions, translate
from fake_cuda import fake_cuda, is_fake_cuda
from gatys import GatysOptions, StyleTransfer
from imaging import load_image
from models import VGGFeatures
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
GPU = torch.device("cuda", 0)


@pytest.fixture
def gpu(monkeypatch):
    """A Turing-class GPU (compute capability 7.5, no bf16: the graders' RTX 2080 Ti) with 8 GiB free."""
    with fake_cuda(monkeypatch) as mode:
        yield mode


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    return load_image(ASSETS / "carcassonne.jpg", 40), load_image(ASSETS / "starry_night.jpg", 40)


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    """Built once on the CPU; each test moves it to the fake GPU (StyleTransfer does)."""
    return VGGFeatures(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"], weights="normalised")


def tiny_gatys(**overrides) -> GatysOptions:
    values = dict(size=40, iterations=3, progress=False, style_weight=1e6, device="cuda")
    values.update(overrides)
    return GatysOptions(**values)


# ------------------------------------------------------------------------------------------- the layer itself
def test_fake_gpu_fails_on_a_device_mix_as_cuda_does(gpu):
    on_gpu = torch.rand(3, 3, device="cuda:0")
    assert on_gpu.device == GPU and on_gpu.is_cuda and (on_gpu @ on_gpu).device == GPU
    with pytest.raises(RuntimeError, match="same device"):
        on_gpu + torch.eye(3)  # what imaging.match_color did (issue 17, item 4)
    with pytest.raises(RuntimeError, match="same device"):
        torch.nn.Linear(3, 3)(on_gpu)  # a module left on the CPU
    assert (on_gpu * torch.tensor(2.0)).device == GPU  # 0-dim CPU tensors are scalars, as on CUDA
    with pytest.raises(TypeError, match="numpy"):
        on_gpu.numpy()  # a missing .cpu() before plotting or saving
    back = on_gpu.cpu()
    assert back.device.type == "cpu" and not is_fake_cuda(back) and back.numpy().shape == (3, 3)
    net = torch.nn.Conv2d(3, 4, 3).to(GPU)
    loss = net(torch.rand(1, 3, 8, 8).to(GPU)).square().mean()
    loss.backward()
    assert net.weight.device == GPU and net.weight.grad.device == GPU and math.isfinite(float(loss.detach()))


def test_architecture_check_accepts_the_fake_gpu_and_the_device_choice_uses_it(gpu):
    assert runtime.pick_device() == GPU and runtime.pick_device("cuda") == GPU
    assert runtime.pick_device(None) == GPU and runtime.pick_device("cpu").type == "cpu"
    assert not runtime.bf16_supported(GPU) and runtime.bf16_supported("cpu")
    assert cli.amp_for_this_device() == "fp16"


# ------------------------------------------------------------------------------------------------------- Gatys
@pytest.mark.parametrize("overrides", [
    {},
    {"preserve_colors": "color_match"},
    {"preserve_colors": "luminance"},
    {"init": "noise", "tv_weight": 1.0, "pooling": "avg"},
    {"init": "style", "channels_last": False},
    {"scales": (32, 40), "iterations": (2, 2)},
    {"optimizer": "adam"}, {"optimizer": "sgd"}, {"optimizer": "rmsprop"}, {"optimizer": "adagrad"},
    {"precision": "fp16"},
    {"style_scale": 0.8, "style_blend_weights": (0.3, 0.7), "snapshot_every": 1},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_gatys_runs_every_option_on_the_gpu(gpu, images, vgg, overrides):
    content, style = images
    options = tiny_gatys(**overrides)
    snapshots = []
    styles = [style, style.flip(-1)] if options.style_blend_weights else style
    result = StyleTransfer(options, vgg=vgg).run(content, styles, callback=lambda i, image, losses: snapshots.append(image))
    assert result.device == "cuda:0" and not is_fake_cuda(result.image) and result.image.device.type == "cpu"
    assert len(result.history) == sum(options.iterations_per_scale())
    assert all(math.isfinite(h["total"]) for h in result.history)
    assert result.sizes[-1] == tuple(result.image.shape[-2:])
    assert all(not is_fake_cuda(s) for s in snapshots) and len(snapshots) == (3 if options.snapshot_every else 0)


def test_gatys_bf16_falls_back_to_fp32_before_ampere_and_runs_on_ampere(monkeypatch, images, vgg):
    content, style = images
    with fake_cuda(monkeypatch, capability=(7, 5)):
        with pytest.warns(UserWarning, match="bf16.*not native on cuda:0; running in fp32"):
            result = StyleTransfer(tiny_gatys(precision="bf16"), vgg=vgg).run(content, style)
        assert result.precision == "fp32"
    with fake_cuda(monkeypatch, capability=(8, 6)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            transfer = StyleTransfer(tiny_gatys(precision="bf16"), vgg=vgg)
        assert transfer.precision == "bf16"
        assert transfer.features(content.to(GPU))["relu1_1"].dtype == torch.bfloat16


def test_gatys_memory_check_counts_the_cache_as_free_and_keeps_1024_px_on_an_8_gb_card(monkeypatch, images, vgg):
    """Items 1 and 9: mem_get_info gets a device index (torch <= 2.4 raises without one), the allocator's cached
    memory counts as free, and the L-BFGS history is in the estimate; 1024 x 768 fits an 8 GB card."""
    content, style = images

    def mem_get_info(device=None):
        if not isinstance(device, int) and (device is None or torch.device(device).index is None):
            raise ValueError("Expected a cuda device with a specified index or an integer, but got: cuda")
        return 6 << 30, 8 << 30

    with fake_cuda(monkeypatch):
        monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 3 << 30)
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1 << 30)
        import gatys

        assert gatys.available_memory(torch.device("cuda")) == (6 + 2) << 30
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "downscaled" warning
            assert gatys.fit_size_to_memory(1024, 0.75, "relu5_1", "vgg19", GPU) == 1024
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 1 << 30)
        with pytest.warns(UserWarning, match="downscaled"):
            assert gatys.fit_size_to_memory(1024, 0.75, "relu5_1", "vgg19", GPU) < 1024


def test_ablation_helpers_on_the_gpu(gpu, images):
    content, style = images
    base = tiny_gatys(iterations=2, channels_last=False)
    alpha, beta = ablations.balanced_weights(content, style, base, base)
    assert (alpha, beta) == pytest.approx((1.0, 1e6))
    alpha, beta = ablations.balanced_weights(content, style, base, ablations.replace(base, weights="imagenet"))
    assert alpha < 1e-2 and beta < 1.0
    rows = ablations.sweep(content, style, base, [{"optimizer": "lbfgs"}, {"optimizer": "adam"}], record_time=True)
    assert [r["device"] for r in rows] == ["cuda:0", "cuda:0"] and not is_fake_cuda(rows[0]["image"])
    (row,) = ablations.reconstruct(content, "style", [("relu1_1",)], base)
    assert math.isfinite(row["loss_total"])


def test_color_match_on_the_gpu(gpu, images):
    content, style = images
    matched = imaging.match_color(style.to(GPU), content.to(GPU))
    assert matched.device == GPU
    pixels = matched.cpu()[0].reshape(3, -1)
    assert torch.allclose(pixels.mean(1), content[0].reshape(3, -1).mean(1), atol=0.02)


# --------------------------------------------------------------------------------------------------- real-time
def _photos(folder: Path, count: int) -> Path:
    folder.mkdir()
    for i in range(count):
        generator = torch.Generator().manual_seed(i)
        small = torch.rand(1, 3, 6, 6, generator=generator)
        image = torch.nn.functional.interpolate(small, size=(40, 48), mode="bicubic", align_corners=False).clamp(0, 1)
        Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(folder / f"p{i}.png")
    return folder


def test_realtime_inference_and_comparison_on_the_gpu(gpu, images):
    content, _ = images
    model = realtime.load_style_model("realtime_4styles")  # default device: the usable GPU
    assert next(model.parameters()).device == GPU
    output = realtime.stylize(content, model, {"starry_night": 0.5, "great_wave": 0.5})
    assert output.device == GPU and output.shape == content.shape
    options = realtime.model_options(model)
    options = dataclasses.replace(options, image_size=32, style_size=32)
    styles = dict(list(realtime.shipped_style_images(model).items())[:1])
    (row,) = evaluation.compare_with_optimisation(model, [content], options, styles, size=32, iterations=2,
                                                progress=False)
    assert math.isfinite(row["ratio"]) and not is_fake_cuda(row["network_image"])


def test_realtime_training_with_fp16_loss_scaling_on_the_gpu(gpu, tmp_path):
    photos = _photos(tmp_path / "photos", 6)
    options = realtime.RealtimeOptions(image_size=32, batch_size=2, iterations=4, width=0.25, style_size=32,
                                       style_layers=("relu1_2", "relu2_2"), holdout=2, sample_every=2,
                                       load_size=40, amp="fp16")
    experiment = realtime.train_realtime(photos, {"starry_night": ASSETS / "starry_night.jpg"}, tmp_path / "run",
                                         options, progress=False, export_name="realtime_gpu",
                                         assets_dir=tmp_path / "assets")
    assert experiment.device == GPU and experiment.model.scaler.is_enabled()
    assert experiment.iteration == 4 and math.isfinite(experiment.history[-1]["total"])
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png")) == ["iter_000002.png",
                                                                                    "iter_000004.png"]
    exported = realtime.load_style_model(tmp_path / "assets" / "realtime_gpu.pth", device="cpu")
    assert next(exported.parameters()).device.type == "cpu"


# ---------------------------------------------------------------------------------------------------- CycleGAN
TINY = dict(size=32, load_size=36, ngf=4, ndf=4, n_blocks=1, n_layers_d=2, pool_size=2)


def test_cyclegan_training_step_with_fp16_loss_scaling_on_the_gpu(gpu, tmp_path):
    photos, paintings = _photos(tmp_path / "A", 4), _photos(tmp_path / "B", 4)
    options = CycleGANOptions(**TINY, n_epochs=1, n_epochs_decay=1)
    exp = cyclegan.train_cyclegan(photos, paintings, tmp_path / "run", options, max_iterations=3, hold_out_photos=1,
                                  hold_out_paintings=1, amp="fp16", progress=False)
    assert exp.device == GPU and exp.model.scaler.is_enabled() and exp.iteration == 3
    assert all(math.isfinite(v) for v in exp.evaluate().values())
    assert all(not is_fake_cuda(v) for v in exp.model.visuals().values())


def test_cyclegan_inference_and_evaluation_on_the_gpu(gpu, tmp_path):
    photos, paintings = _photos(tmp_path / "A", 3), _photos(tmp_path / "B", 3)
    model = CycleGANModel(CycleGANOptions(**TINY))
    recipe = {"ngf": 4, "ndf": 4, "n_blocks": 1, "n_layers_d": 2, "upsampling": "transpose", "size": 32, "seed": 0,
              "data": {"held_out_photos": ["p0.png"], "held_out_paintings": ["p1.png"]}}
    cyclegan.export_generators(model, recipe, assets_dir=tmp_path / "assets")
    generator = cyclegan.load_generator("photo2painting", assets_dir=tmp_path / "assets")
    assert next(generator.parameters()).device == GPU
    photo = torch.rand(1, 3, 20, 28)
    assert translate(generator, photo.to(GPU)).device == GPU and translate(generator, photo).device.type == "cpu"
    vgg = VGGFeatures(layers=list(evaluation.GRAM_LAYERS), weights=None)
    results = evaluation.evaluate_shipped(photos, paintings, size=32, assets_dir=tmp_path / "assets", vgg=vgg)
    assert math.isfinite(results["cycle_l1_photo"]) and math.isfinite(results["untrained_cycle_l1_photo"])


# -------------------------------------------------------------------------------------------------------- demo
def test_demo_functions_on_the_gpu(gpu, tmp_path):
    settings = figures.DemoSettings.for_device("cuda")
    assert settings.device == "cuda:0" and settings.gatys_scales == (256, 512)
    settings = figures.DemoSettings("cuda:0", (32, 40), (2, 2), 1e6, 64, 64, 1)  # the GPU path at tiny sizes
    figure, result = figures.gatys_demo(settings, tmp_path)
    height, width = result.sizes[-1]
    assert result.device == "cuda:0" and f"{width}x{height} px on cuda:0" in " ".join(t.get_text() for t in figure.texts)
    figure, milliseconds = figures.realtime_demo(settings, tmp_path, photos=("carcassonne.jpg",))
    assert milliseconds > 0
    figures.cyclegan_demo(settings, tmp_path)
    assert {"gatys.png", "realtime.png", "cyclegan.png"} <= {p.name for p in tmp_path.glob("*.png")}


# ------------------------------------------------------------------------------ PyTorch's FakeTensorMode as well
def test_forward_paths_under_pytorch_fake_tensor_mode(images):
    """No data, so nothing that reads a value (losses, the transform network's style-weight check) and no backward:
    VGG features, colour matching (issue 17 item 4 was found this way), the CycleGAN generator's forward."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    content, style = images
    vgg = VGGFeatures(["relu1_1", "relu2_1"], weights=None)
    generator = cyclegan.build_generator(CycleGANOptions(**TINY))
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        device = torch.device("cuda", 0)
        content_gpu, style_gpu = content.to(device), style.to(device)
        assert imaging.match_color(style_gpu, content_gpu).device == device
        vgg_gpu = vgg.to(device)
        assert vgg_gpu(content_gpu)["relu2_1"].device == device
        crop = content_gpu[..., :28, :40]  # multiples of 4
        assert generator.to(device)(crop).device == device
        with pytest.raises(RuntimeError, match="device"):
            mode.from_tensor(torch.ones(3, 3)) + torch.ones(3, 3, device=device)
