"""Real-time style transfer: architecture facts, conditional instance norm, training, export/load, inference."""
from __future__ import annotations

import copy
import importlib.util
import json

import evaluation
import imaging
import losses
import pytest
import realtime
import torch
import torch.nn as nn
import weights
from models import ConditionalInstanceNorm2d, TransformerNet, widen
from PIL import Image
from realtime import RealtimeOptions

torch.set_num_threads(min(2, torch.get_num_threads()))


def smooth_image(seed: int, size: int = 48) -> Image.Image:
    """A random smooth RGB picture (upsampled noise), like a blurry photo."""
    generator = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 6, 6, generator=generator)
    image = torch.nn.functional.interpolate(small, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).astype("uint8"))


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(10):
        smooth_image(i).save(folder / f"photo_{i:02d}.png")
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    return folder


@pytest.fixture
def style_file(tmp_path):
    stripes = torch.zeros(3, 64, 64)
    stripes[0, :, ::4] = 1.0
    stripes[2, ::6, :] = 1.0
    path = tmp_path / "stripes.png"
    Image.fromarray((stripes.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(path)
    return path


def tiny_options(**changes) -> RealtimeOptions:
    base = dict(image_size=32, batch_size=2, iterations=24, learning_rate=1e-2, width=0.25, style_size=48,
                style_layers=("relu1_2", "relu2_2"), style_weight=5.0, holdout=2, sample_every=12, load_size=40)
    base.update(changes)
    return RealtimeOptions(**base)


# ------------------------------------------------------------------------------------------- architecture
def test_downsamples_by_four_and_restores_the_size():
    net = TransformerNet(n_styles=2, width=0.25).eval()
    seen = {}

    def remember(module, inputs, output):
        seen["residual"] = output.shape

    net.residual[0].register_forward_hook(remember)
    image = torch.rand(1, 3, 24, 36)
    output = net(image, 1)
    assert seen["residual"][-2:] == (6, 9)          # 24/4, 36/4
    assert output.shape == image.shape
    assert 0.0 <= output.min() and output.max() <= 1.0  # sigmoid output is a valid image
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 3, 23, 36))


@pytest.mark.parametrize("height,width", [(17, 23), (5, 9), (32, 30)])
def test_stylize_handles_any_size_by_padding(height, width):
    net = TransformerNet(n_styles=1, width=0.25).eval()
    image = torch.rand(1, 3, height, width)
    output = realtime.stylize(image, net)
    assert output.shape == image.shape
    # the visible part equals the output on the reflection-padded image, cropped back
    if height % 4 == 0 and width % 4 == 0:
        torch.testing.assert_close(output, net(image, 0))


def test_conditional_norm_with_one_hot_equals_plain_instance_norm():
    torch.manual_seed(0)
    cin = ConditionalInstanceNorm2d(5, n_styles=3)
    with torch.no_grad():
        cin.gamma.normal_()
        cin.beta.normal_()
    x = torch.randn(2, 5, 7, 6) * 3 + 1
    plain = nn.InstanceNorm2d(5, affine=True)
    with torch.no_grad():
        plain.weight.copy_(cin.gamma[2])
        plain.bias.copy_(cin.beta[2])
    one_hot = torch.tensor([[0.0, 0.0, 1.0]] * 2)
    torch.testing.assert_close(cin(x, one_hot), plain(x))
    # normalisation itself: per (sample, channel) mean beta and std |gamma| (hand-checkable statistics)
    out = cin(x, one_hot)
    torch.testing.assert_close(out.mean(dim=(2, 3)), cin.beta[2].expand(2, -1).detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(2, 3), unbiased=False), cin.gamma[2].abs().expand(2, -1).detach(), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("grad", [True, False])
def test_conditional_norm_of_one_image_equals_the_definition_in_either_layout(grad):
    # at inference one image takes the batch-norm path (same statistics, affine fused, layout kept), in training the
    # instance-norm path: check both against gamma (x - mean) / sqrt(var + eps) + beta written out, then ReLU
    torch.manual_seed(0)
    cin = ConditionalInstanceNorm2d(4, n_styles=2)
    with torch.no_grad():
        cin.gamma.normal_()
        cin.beta.normal_()
    x = torch.randn(1, 4, 6, 5) * 2 + 3
    weights = torch.tensor([[0.25, 0.75]])
    gamma, beta = (weights @ cin.gamma.detach())[0], (weights @ cin.beta.detach())[0]
    mean, var = x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), unbiased=False, keepdim=True)
    expected = ((x - mean) / torch.sqrt(var + 1e-5) * gamma[:, None, None] + beta[:, None, None]).clamp(min=0)
    for layout in (torch.contiguous_format, torch.channels_last):
        with torch.set_grad_enabled(grad):
            out = cin(x.contiguous(memory_format=layout), weights, relu=True)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        assert grad or out.is_contiguous(memory_format=layout)


@pytest.mark.parametrize("shape", [(1, 5, 7, 9), (2, 5, 4, 3), (1, 5, 1, 2)])
def test_upsampled_conv_at_low_resolution_equals_upsample_pad_conv(shape):
    from inference import upsampled_conv3x3

    torch.manual_seed(0)
    conv = nn.Conv2d(5, 4, 3)
    x = torch.randn(shape)
    expected = conv(torch.nn.functional.pad(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"),
                                            (1, 1, 1, 1), mode="reflect"))
    with torch.no_grad():
        for layout in (torch.contiguous_format, torch.channels_last):
            out = upsampled_conv3x3(x.contiguous(memory_format=layout), conv)
            torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
            assert out.shape == (shape[0], 4, 2 * shape[2], 2 * shape[3])
            assert out.is_contiguous(memory_format=layout)


def test_loaded_network_runs_channels_last_on_the_cpu_with_the_same_output(trained):
    model = realtime.load_style_model(trained["assets"] / "realtime_test.pth", device="cpu")
    assert model.down[0].conv.conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    assert plain.down[0].conv.conv.weight.is_contiguous()
    image = torch.rand(1, 3, 36, 52)
    output = realtime.stylize(image, model, "blobs")
    assert output.is_contiguous()
    torch.testing.assert_close(output, realtime.stylize(image, plain, "blobs"), atol=1e-5, rtol=1e-4)


def test_blending_styles_is_a_convex_combination_of_norm_parameters():
    torch.manual_seed(1)
    multi = TransformerNet(n_styles=3, width=0.25).eval()
    with torch.no_grad():
        for module in multi.modules():
            if isinstance(module, ConditionalInstanceNorm2d):
                module.gamma.uniform_(0.5, 1.5)
                module.beta.normal_(0, 0.3)
    mix = torch.tensor([0.2, 0.0, 0.8])
    single = TransformerNet(n_styles=1, width=0.25).eval()
    state = multi.state_dict()
    for key, value in state.items():
        if key.endswith(".gamma") or key.endswith(".beta"):
            state[key] = (mix @ value).unsqueeze(0)    # gamma = sum_s w_s gamma_s
    single.load_state_dict(state)
    image = torch.rand(2, 3, 16, 20)
    torch.testing.assert_close(multi(image, mix), single(image, 0), atol=1e-5, rtol=1e-5)
    # names and dicts: {"a": 1, "c": 4} means weights (0.2, 0, 0.8)
    multi.style_names = ["a", "b", "c"]
    torch.testing.assert_close(realtime.resolve_style(multi, {"a": 1, "c": 4}), mix)
    torch.testing.assert_close(realtime.stylize(image, multi, {"a": 1, "c": 4}, precision="fp32"), single(image, 0),
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="convex"):
        multi(image, torch.tensor([0.5, 0.6, 0.0]))


def test_widening_keeps_the_function_and_lets_the_copies_diverge():
    torch.manual_seed(0)
    narrow = TransformerNet(n_styles=3, width=0.25, n_residual=2).double()
    for parameter in narrow.parameters():  # away from the identity-like initial norms
        parameter.data.add_(0.2 * torch.randn_like(parameter))
    wide = widen(narrow, 2, generator=torch.Generator().manual_seed(1))
    assert wide.width == 0.5 and wide.config()["n_residual"] == 2
    assert sum(p.numel() for p in wide.parameters()) > 3 * sum(p.numel() for p in narrow.parameters())
    image = torch.rand(2, 3, 24, 36, dtype=torch.float64)
    for style in (0, 2, torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)):
        torch.testing.assert_close(wide(image, style), narrow(image, style), atol=1e-12, rtol=0)
    # the copies of a channel start equal but get different gradients (the next conv splits its weight unevenly)
    wide(image, 1).square().mean().backward()
    weight, grad = wide.down[0].conv.conv.weight, wide.down[0].conv.conv.weight.grad
    channels = narrow.down[0].conv.conv.out_channels
    torch.testing.assert_close(weight[:channels], weight[channels:], atol=0, rtol=0)
    assert (grad[:channels] - grad[channels:]).abs().max() > 1e-3 * grad.abs().max()
    with pytest.raises(ValueError, match="whole|exactly"):
        widen(TransformerNet(width=0.3), 2)  # 0.3 x 32 rounds to 10 channels, 0.6 x 32 to 19, not 20


def test_unknown_style_name_lists_the_available_ones():
    net = TransformerNet(n_styles=2, width=0.25, style_names=["starry_night", "great_wave"])
    with pytest.raises(KeyError, match="starry_night, great_wave"):
        realtime.resolve_style(net, "mona_lisa")


# -------------------------------------------------------------------------------------------------- losses
def test_perceptual_loss_is_zero_when_output_is_content_and_style():
    torch.manual_seed(2)
    image = torch.rand(1, 3, 32, 32)
    options = tiny_options(tv_weight=3.0)
    loss = losses.PerceptualLoss(options, [image])
    terms = loss(image, image, torch.ones(1, 1))
    assert terms["content"].item() == 0.0
    assert terms["style"].item() == pytest.approx(0.0, abs=1e-9)
    # TV term = mean over the N*C*H*W elements of the squared neighbour differences; a ramp has a known value
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32)
    expected = 3 * 32 * 31 * (1 / 31) ** 2 / (3 * 32 * 32)
    assert loss(ramp, ramp, torch.ones(1, 1))["tv"].item() == pytest.approx(expected, rel=1e-5)
    assert terms["total"].item() == pytest.approx(3.0 * terms["tv"].item(), rel=1e-6)


def test_loss_network_vgg16_is_johnsons_and_leaves_the_default_objective_as_it_was():
    """loss_network="vgg16" (Johnson sec. 3.1): relu4_3 is then the 10th convolution (VGG19: the 11th). The default
    adds nothing to objective(), so comparisons stored before the option existed still match."""
    with pytest.raises(ValueError, match="normalised weights are VGG19's"):
        tiny_options(loss_network="vgg16")  # the normalised weights are VGG19's
    with pytest.raises(ValueError, match="loss_network must be"):
        tiny_options(loss_network="vgg11")
    with pytest.raises(ValueError, match="relu5_4"):
        tiny_options(loss_network="vgg16", vgg_weights=None, style_layers=("relu5_4",))
    assert "loss_network" not in tiny_options().objective()
    image = torch.rand(1, 3, 32, 32)
    convolutions = {}
    for network in ("vgg16", "vgg19"):
        options = tiny_options(loss_network=network, vgg_weights=None, style_layers=("relu1_2", "relu4_3"))
        loss = losses.PerceptualLoss(options, [image])
        convolutions[network] = sum(isinstance(m, torch.nn.Conv2d) for m in loss.vgg.modules())
        assert options.objective().get("loss_network", "vgg19") == network
        assert loss(image, image, torch.ones(1, 1))["style"].item() == pytest.approx(0.0, abs=1e-9)
    assert convolutions == {"vgg16": 10, "vgg19": 11}


def test_lbfgs_optimise_image_reaches_the_minimum_of_a_quadratic():
    target = torch.rand(1, 3, 4, 4)
    result, trace = evaluation.optimise_image(lambda x: ((x - target) ** 2).sum(), torch.zeros_like(target), iterations=10)
    torch.testing.assert_close(result, target, atol=1e-4, rtol=0)
    assert trace[-1] < 1e-6 < trace[0]


# ------------------------------------------------------------------------------- training, export, loading
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short real training run (normalised VGG19) on a tiny synthetic folder, then exported."""
    root = tmp_path_factory.mktemp("train")
    photos = root / "photos"
    photos.mkdir()
    for i in range(10):
        smooth_image(i).save(photos / f"photo_{i:02d}.png")
    (photos / "broken.jpg").write_bytes(b"this is not a JPEG")
    stripes = torch.zeros(3, 64, 64)
    stripes[0, :, ::4] = 1.0
    stripes[2, ::6, :] = 1.0
    Image.fromarray((stripes.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(root / "stripes.png")
    smooth_image(99, 64).save(root / "blobs.png")
    styles = {"stripes": root / "stripes.png", "blobs": root / "blobs.png"}
    assets_dir = root / "assets"
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        experiment = realtime.train_realtime(photos, styles, root / "run", tiny_options(), export_name="realtime_test",
                                             assets_dir=assets_dir, progress=False)
    return {"root": root, "photos": photos, "styles": styles, "assets": assets_dir, "experiment": experiment}


def test_training_lowers_the_loss_and_skips_unreadable_photos(trained):
    experiment = trained["experiment"]
    assert experiment.iteration == 24
    assert [p.name for p, _ in experiment.skipped] == ["broken.jpg"]
    history = experiment.history
    first, last = history[0]["total"], history[-1]["total"]
    assert last < 0.85 * first, history
    assert history[-1]["val"]["total"] < 0.8 * history[0]["val"]["total"], history
    samples = sorted((trained["root"] / "run" / "samples").glob("iter_*.png"))
    assert [p.name for p in samples] == ["iter_000012.png", "iter_000024.png"]


def test_training_resumes_from_its_checkpoint(trained, monkeypatch):
    """Extending the run to 28 iterations trains exactly 4 more steps, starting from the saved weights."""
    before = {k: v.clone() for k, v in trained["experiment"].model.transformer.state_dict().items()}
    started_from, steps = [], []
    step = realtime.RealtimeStyleModel.optimize_parameters

    def counted(self):
        if not steps:
            started_from.append({k: v.clone() for k, v in self.transformer.state_dict().items()})
        steps.append(self.steps)
        return step(self)

    monkeypatch.setattr(realtime.RealtimeStyleModel, "optimize_parameters", counted)
    with pytest.warns(UserWarning):
        experiment = realtime.train_realtime(trained["photos"], trained["styles"], trained["root"] / "run",
                                             tiny_options(iterations=28), progress=False)
    assert experiment.iteration == 28 and steps == [24, 25, 26, 27]  # a silent restart would train 28 steps
    for key, value in before.items():
        assert torch.equal(started_from[0][key], value), key  # resumed from the trained weights, not a fresh net
    assert experiment.history[0] == trained["experiment"].history[0]


def test_export_then_load_round_trip_and_recipe(trained):
    path = trained["assets"] / "realtime_test.pth"
    model = realtime.load_style_model(path)
    original = trained["experiment"].model.transformer.eval()
    image = torch.rand(1, 3, 20, 28)
    torch.testing.assert_close(realtime.stylize(image, model, "blobs"), realtime.stylize(image, original, 1), atol=2e-2, rtol=0)
    for key, value in original.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value.half().float())
    recipe = json.loads((trained["assets"] / "MANIFEST.json").read_text())["realtime_test.pth"]["recipe"]
    assert recipe["styles"] == ["stripes", "blobs"] and recipe["iterations"] == 24
    train_files = {p.name for p in trained["experiment"].train_set.files}
    assert recipe["training_images"] == len(train_files) and len(recipe["held_out"]) == 2
    assert not train_files & set(recipe["held_out"])          # held-out photos are never trained on
    assert (trained["assets"] / "stripes.png").read_bytes() == trained["styles"]["stripes"].read_bytes()
    # a style name selects the model and becomes the default style
    by_name = realtime.load_style_model("blobs", assets_dir=trained["assets"])
    assert by_name.default_style == 1
    torch.testing.assert_close(realtime.stylize(image, by_name), realtime.stylize(image, model, "blobs"))


def test_warm_start_from_a_narrower_model_widens_it(trained, tmp_path):
    narrow = realtime.load_style_model(trained["assets"] / "realtime_test.pth")
    with pytest.raises(ValueError, match="would export an untrained network"):  # no untrained "final" exports
        realtime.train_realtime(trained["photos"], trained["styles"], tmp_path / "zero", tiny_options(iterations=0),
                                export_name="realtime_zero", assets_dir=tmp_path / "assets", progress=False)
    widened_first: list[torch.nn.Module] = []
    step = realtime.RealtimeStyleModel.optimize_parameters

    def remember_then_step(self):  # the network as widened, before its first training step
        if not widened_first:
            widened_first.append(copy.deepcopy(self.transformer).eval())
        return step(self)

    with pytest.warns(UserWarning), pytest.MonkeyPatch.context() as patch:
        patch.setattr(realtime.RealtimeStyleModel, "optimize_parameters", remember_then_step)
        experiment = realtime.train_realtime(
            trained["photos"], trained["styles"], tmp_path / "wide_run", tiny_options(width=0.5, iterations=1),
            export_name="realtime_wide", assets_dir=tmp_path / "assets", progress=False,
            init_from=trained["assets"] / "realtime_test.pth")
    wide = widened_first[0]
    assert wide.width == 0.5 and experiment.iteration == 1
    image = torch.rand(1, 3, 20, 28)
    torch.testing.assert_close(realtime.stylize(image, wide, 1, precision="fp32"),
                               realtime.stylize(image, narrow, 1, precision="fp32"), atol=1e-5, rtol=0)
    recipe = json.loads((tmp_path / "assets" / "MANIFEST.json").read_text())["realtime_wide.pth"]["recipe"]
    assert recipe["architecture"]["width"] == 0.5 and recipe["iterations"] == 25  # 24 inherited + 1 trained
    assert recipe["export_reason"] == "final"
    assert recipe["warm_start"]["widened_from_width"] == 0.25 and "source_warm_start" not in recipe["warm_start"]
    with pytest.warns(UserWarning):  # a warm start from a warm-started model keeps the chain in its recipe
        realtime.train_realtime(trained["photos"], trained["styles"], tmp_path / "again", tiny_options(width=0.5, iterations=1),
                                export_name="realtime_again", assets_dir=tmp_path / "assets", progress=False,
                                init_from=tmp_path / "assets" / "realtime_wide.pth")
    chained = json.loads((tmp_path / "assets" / "MANIFEST.json").read_text())["realtime_again.pth"]["recipe"]
    assert chained["warm_start"]["source_warm_start"]["widened_from_width"] == 0.25
    with pytest.raises(ValueError, match="whole factor"), pytest.warns(UserWarning):
        realtime.train_realtime(trained["photos"], trained["styles"], tmp_path / "odd_run", tiny_options(width=0.375),
                                progress=False, init_from=trained["assets"] / "realtime_test.pth")


def test_weight_average_is_the_mean_of_the_snapshots(trained, tmp_path):
    first = realtime.load_style_model(trained["assets"] / "realtime_test.pth")
    second = realtime.load_style_model(trained["assets"] / "realtime_test.pth")
    with torch.no_grad():
        for parameter in second.parameters():
            parameter.add_(0.5)
    average = realtime.average_models([first, second])
    for key, value in first.state_dict().items():
        torch.testing.assert_close(average.state_dict()[key], value + 0.25)
    assert average.recipe["weight_average"]["snapshot_iterations"] == [24, 24]
    # one snapshot: the same function; the command line exports it with its recipe and style images
    import cli

    cli.main(["realtime", "average", str(trained["assets"] / "realtime_test.pth"), "--export", "realtime_avg",
              "--output", str(tmp_path), "--style-images-dir", str(trained["assets"])])
    exported = realtime.load_style_model(tmp_path / "realtime_avg.pth")
    image = torch.rand(1, 3, 20, 28)
    torch.testing.assert_close(realtime.stylize(image, exported, "blobs"), realtime.stylize(image, first, "blobs"))
    recipe = json.loads((tmp_path / "MANIFEST.json").read_text())["realtime_avg.pth"]["recipe"]
    assert recipe["iterations"] == 24 and recipe["weight_average"]["snapshot_iterations"] == [24]
    assert (tmp_path / "stripes.png").exists()
    with pytest.raises(ValueError, match="must share"):
        realtime.average_models([first, TransformerNet(n_styles=2, width=0.5, style_names=["stripes", "blobs"])])


def test_unknown_style_name_in_assets_lists_available_styles(trained):
    with pytest.raises(KeyError, match="Available styles: blobs, stripes"):
        realtime.load_style_model("mona_lisa", assets_dir=trained["assets"])


def test_altered_weights_file_is_refused(trained, tmp_path):
    import shutil

    for name in ("realtime_test.pth", "MANIFEST.json"):
        shutil.copy(trained["assets"] / name, tmp_path / name)
    data = bytearray((tmp_path / "realtime_test.pth").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "realtime_test.pth").write_bytes(bytes(data))
    with pytest.raises(weights.WeightsError, match="SHA-256 mismatch"):
        realtime.load_style_model(tmp_path / "realtime_test.pth")


def test_wrong_architecture_file_errors_clearly(tmp_path):
    weights.save_fp16_weights(nn.Conv2d(3, 8, 3).state_dict(), "realtime_conv.pth", {"kind": "other"}, assets_dir=tmp_path)
    with pytest.raises(weights.WeightsError, match="not a TransformerNet"):
        realtime.load_style_model(tmp_path / "realtime_conv.pth")
    state = TransformerNet(n_styles=2, width=0.25).state_dict()
    del state["output.conv.bias"]
    weights.save_fp16_weights(state, "realtime_cut.pth", {"kind": "realtime_style_transfer"}, assets_dir=tmp_path)
    with pytest.raises(weights.WeightsError, match="another architecture"):
        realtime.load_style_model(tmp_path / "realtime_cut.pth")


def test_stylize_folder_writes_one_image_per_photo(trained, tmp_path):
    model = realtime.load_style_model(trained["assets"] / "realtime_test.pth")
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        smooth_image(i, 30).save(folder / f"p{i}.png")
    written = realtime.stylize_folder(folder, tmp_path / "out", model, {"stripes": 0.5, "blobs": 0.5}, progress=False)
    assert sorted(p.name for p in written) == ["p0.png", "p1.png"]
    assert Image.open(written[0]).size == (30, 30)


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None,
                    reason="onnx / onnxruntime not installed")
def test_onnx_export_matches_torch(trained, tmp_path):
    import onnxruntime

    model = realtime.load_style_model(trained["assets"] / "realtime_test.pth")
    path = realtime.export_onnx(model, tmp_path / "model.onnx", style={"stripes": 0.3, "blobs": 0.7}, size=32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = torch.rand(1, 3, 24, 40)
    (onnx_output,) = session.run(None, {"image": image.numpy()})
    expected = realtime.stylize(image, model, {"stripes": 0.3, "blobs": 0.7})
    torch.testing.assert_close(torch.from_numpy(onnx_output), expected, atol=1e-4, rtol=1e-4)


def test_holdout_split_is_fixed_by_the_seed_and_disjoint(photo_folder):
    train_a, held_a = imaging.split_held_out(photo_folder, 3, seed=0, draw="torch")
    train_b, held_b = imaging.split_held_out(photo_folder, 3, seed=0, draw="torch")
    assert held_a == held_b and len(held_a) == 3 and len(train_a) == 8
    assert not set(train_a) & set(held_a)
    assert imaging.split_held_out(photo_folder, 3, seed=1, draw="torch")[1] != held_a
    with pytest.raises(ValueError, match="leaves no training images"):
        imaging.split_held_out(photo_folder, 11, draw="torch")


def test_options_survive_the_recipe_round_trip():
    from dataclasses import asdict

    options = tiny_options(style_lr_scale=10.0)
    assert RealtimeOptions.from_dict(json.loads(json.dumps(asdict(options)))) == options


def test_model_options_are_the_ones_recorded_in_the_recipe(style_file, tmp_path):
    options = tiny_options(style_lr_scale=10.0)
    path = realtime.export_model(TransformerNet(n_styles=1, width=0.25), "with_options", options,
                                 {"stripes": style_file}, assets_dir=tmp_path / "assets")
    assert realtime.model_options(realtime.load_style_model(path, device="cpu")) == options
    with pytest.raises(ValueError, match="TransformerNet with styles \\['style_0'\\] has no training options"):
        realtime.model_options(TransformerNet())


def test_checkpoints_follow_the_schedule_and_cadence_options_never_block_a_resume(photo_folder, style_file, tmp_path,
                                                                               monkeypatch):
    """Item 10: no checkpoint per 10-iteration chunk; by time (off here) and every N iterations, plus the stop.
    The cadence options are not in the run's config, so changing them (or a checkpoint written before they existed)
    resumes without ConfigMismatchError."""
    import nntools

    saved_at: list[int] = []
    real_save = nntools.Experiment.save
    monkeypatch.setattr(nntools.Experiment, "save", lambda self: (saved_at.append(self.iteration), real_save(self)))
    styles = {"stripes": style_file}
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        realtime.train_realtime(photo_folder, styles, tmp_path / "run", tiny_options(
            iterations=24, checkpoint_minutes=None, checkpoint_every=None), progress=False)
    assert saved_at == [24]  # only the stop (the epoch ends and 10-iteration chunks no longer save)
    saved_at.clear()
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        experiment = realtime.train_realtime(photo_folder, styles, tmp_path / "run", tiny_options(
            iterations=48, checkpoint_minutes=5.0, checkpoint_every=10), progress=False)
    assert experiment.iteration == 48 and saved_at == [34, 44, 48]
    assert "options.checkpoint_every" not in experiment.config and not experiment.config_changes


def test_a_run_resumes_on_a_machine_with_other_mixed_precision(photo_folder, style_file, tmp_path):
    """Item 8: cli.train_all sets amp from the device of each call; the amp key is accepted on resume and recorded."""
    import checkpoint
    import cli

    styles = {"stripes": style_file}
    assert cli.amp_for_this_device() is False  # this CPU
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        realtime.train_realtime(photo_folder, styles, tmp_path / "run", tiny_options(iterations=4, amp="fp16"),
                                progress=False)  # as on a GPU (fp16 falls back to fp32 here, with a warning)
    with pytest.warns(UserWarning), pytest.raises(checkpoint.ConfigMismatchError, match="options.amp"):
        realtime.train_realtime(photo_folder, styles, tmp_path / "run", tiny_options(iterations=8), progress=False)
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        experiment = realtime.train_realtime(photo_folder, styles, tmp_path / "run", tiny_options(iterations=8),
                                             progress=False, accept_config_changes=cli.DEVICE_DEPENDENT_KEYS)
    assert experiment.iteration == 8
    assert [(c["key"], c["stored"], c["new"]) for c in experiment.config_changes] == [("options.amp", "fp16", False)]


def test_linear_learning_rate_decay_by_step_and_in_the_config_only_when_on(photo_folder, style_file, tmp_path,
                                                                         monkeypatch):
    """lr_decay_iterations=4 of 8: lr 1e-2 (style parameters x10) for steps 0-4, then 3/4, 2/4, 1/4 of it.
    Off (0, the behaviour before the option existed) it is left out of the config, so older runs still resume."""
    import checkpoint

    rates: list[tuple[float, float]] = []
    step = realtime.RealtimeStyleModel.optimize_parameters

    def recorded(self):
        losses = step(self)
        rates.append(tuple(group["lr"] for group in self.optimizers["transformer"].param_groups))
        return losses

    monkeypatch.setattr(realtime.RealtimeStyleModel, "optimize_parameters", recorded)
    styles = {"stripes": style_file}
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        experiment = realtime.train_realtime(photo_folder, styles, tmp_path / "decay", tiny_options(
            iterations=8, lr_decay_iterations=4, style_lr_scale=10.0), progress=False)
    expected = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert rates == pytest.approx([(1e-2 * f, 1e-1 * f) for f in expected])
    assert experiment.config["options.lr_decay_iterations"] == 4
    with pytest.warns(UserWarning), pytest.raises(checkpoint.ConfigMismatchError, match="lr_decay_iterations"):
        realtime.train_realtime(photo_folder, styles, tmp_path / "decay", tiny_options(
            iterations=12, style_lr_scale=10.0), progress=False)
    rates.clear()
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        constant = realtime.train_realtime(photo_folder, styles, tmp_path / "constant", tiny_options(iterations=3),
                                           progress=False)
    assert rates == [(1e-2, 1e-2)] * 3
    assert not any("lr_decay" in key for key in constant.config)
