"""CycleGAN (Zhu et al. 2017): network structure, losses, image pool, training, exact resume, shipped weights."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cyclegan
import evaluation
import numpy as np
import pytest
import torch
import weights
from cyclegan import (
    CycleGANModel,
    CycleGANOptions,
    ImagePool,
    to_signed,
    to_unit,
    translate,
)
from losses import cycle_consistency_loss, identity_loss, lsgan_loss
from models import PatchDiscriminator, ResnetBlock, ResnetGenerator, init_weights
from PIL import Image
from torch import nn

TINY = dict(size=32, ngf=4, ndf=4, n_blocks=1, pool_size=2, lr=1e-3)


def make_domains(root: Path, photos: int = 4, paintings: int = 4) -> tuple[Path, Path]:
    """Two tiny synthetic domains: smooth colour gradients ('photos') and striped noisy images ('paintings')."""
    rng = np.random.default_rng(0)
    photo_dir, painting_dir = root / "photos", root / "paintings"
    photo_dir.mkdir(parents=True)
    painting_dir.mkdir(parents=True)
    y, x = np.mgrid[0:40, 0:48] / 48.0
    for i in range(photos):
        phase = rng.uniform(0, 2 * np.pi, 3)
        image = np.stack([0.5 + 0.5 * np.sin(2 * x + 3 * y + phase[c]) for c in range(3)], -1)
        Image.fromarray((image * 255).astype(np.uint8)).save(photo_dir / f"photo{i}.png")
    for i in range(paintings):
        stripes = (np.sin(x * 40 + i) > 0)[..., None] * rng.uniform(0.3, 1.0, 3)
        image = np.clip(stripes + rng.normal(0, 0.1, (40, 48, 3)), 0, 1)
        Image.fromarray((image * 255).astype(np.uint8)).save(painting_dir / f"painting{i}.png")
    return photo_dir, painting_dir


# ------------------------------------------------------------------------------------------------ networks
def test_patchgan_output_pixel_sees_exactly_a_70x70_window() -> None:
    # Instance norm couples every pixel of an image, so the receptive field is measured without it.
    torch.manual_seed(0)
    discriminator = init_weights(PatchDiscriminator(ndf=4, n_layers=3, norm="none")).double()
    assert discriminator.receptive_field() == 70
    image = torch.rand(1, 3, 160, 160, dtype=torch.float64, requires_grad=True)
    output = discriminator(image)
    assert output.shape[-2:] == (18, 18)  # 160 -> 80 -> 40 -> 20 -> 19 -> 18
    output[0, 0, 9, 9].backward()
    depends = image.grad[0].abs().sum(0) > 0
    rows, cols = depends.any(1).nonzero().flatten(), depends.any(0).nonzero().flatten()
    # Window start = 8 * 9 - (1*1 + 1*2 + 1*4 + 1*8 + 1*8) = 72 - 23 = 49 (padding 1 at every layer, jumps 1,2,4,8,8).
    assert (rows.min().item(), rows.max().item()) == (49, 118)
    assert (cols.min().item(), cols.max().item()) == (49, 118)
    assert depends.sum().item() == 70 * 70  # every pixel of the window matters, none outside it


def test_parameter_counts_match_the_reference_implementation() -> None:
    # junyanz/pytorch-CycleGAN-and-pix2pix prints 11.378 M for resnet_9blocks and 2.765 M for the basic PatchGAN.
    generator, discriminator = ResnetGenerator(ngf=64, n_blocks=9), PatchDiscriminator(ndf=64)
    assert sum(p.numel() for p in generator.parameters()) == 11_378_179
    assert sum(p.numel() for p in discriminator.parameters()) == 2_764_737
    # Each extra residual block at 4 * ngf = 256 channels adds two 3x3 convs with biases.
    six = ResnetGenerator(ngf=64, n_blocks=6)
    assert 11_378_179 - sum(p.numel() for p in six.parameters()) == 3 * 2 * (256 * 256 * 9 + 256)


@pytest.mark.parametrize("n_blocks", [6, 9])
def test_residual_blocks_count_and_identity_shortcut(n_blocks: int) -> None:
    generator = ResnetGenerator(ngf=8, n_blocks=n_blocks)
    assert len(generator.residual_blocks) == n_blocks
    assert all(block.conv_block[1].in_channels == 32 for block in generator.residual_blocks)  # 4 * ngf
    block = ResnetBlock(8)
    for parameter in block.parameters():
        nn.init.zeros_(parameter)
    x = torch.randn(2, 8, 12, 12)
    torch.testing.assert_close(block(x), x)  # zero residual branch: y = x + 0


def test_generator_downsamples_by_four_and_outputs_tanh_range() -> None:
    generator = init_weights(ResnetGenerator(ngf=8, n_blocks=2))
    shapes = []
    generator.residual_blocks[0].register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    output = generator(torch.randn(1, 3, 24, 36) * 5)
    assert shapes == [(1, 32, 6, 9)] and output.shape == (1, 3, 24, 36)
    assert output.abs().max() <= 1.0
    with pytest.raises(ValueError, match="divisible by 4"):
        generator(torch.rand(1, 3, 30, 32))


def test_init_weights_draws_from_normal_0_002() -> None:
    torch.manual_seed(0)
    generator = init_weights(ResnetGenerator(ngf=64, n_blocks=9))
    weights = torch.cat([m.weight.flatten() for m in generator.modules()
                         if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    biases = torch.cat([m.bias.flatten() for m in generator.modules()
                        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None])
    assert weights.numel() > 10_000_000
    assert abs(weights.mean().item()) < 1e-4
    assert weights.std().item() == pytest.approx(0.02, rel=0.01)
    assert (weights.abs() > 3 * 0.02).float().mean().item() == pytest.approx(0.0027, abs=0.0005)  # Gaussian tail
    assert torch.count_nonzero(biases) == 0


def test_translate_any_size_matches_generator_and_keeps_range() -> None:
    torch.manual_seed(0)
    generator = init_weights(ResnetGenerator(ngf=4, n_blocks=1))
    image = torch.rand(1, 3, 32, 40)
    torch.testing.assert_close(translate(generator, image, "fp32"), to_unit(generator.eval()(to_signed(image))))
    for shape in [(3, 37, 50), (1, 3, 5, 3)]:
        output = translate(generator, torch.rand(shape))
        assert output.shape == shape and 0 <= output.min() and output.max() <= 1


# -------------------------------------------------------------------------------------------------- losses
def test_lsgan_cycle_identity_losses_hand_computed() -> None:
    prediction = torch.tensor([0.5, 0.0, 2.0])
    assert lsgan_loss(prediction, True).item() == pytest.approx((0.25 + 1 + 1) / 3)
    assert lsgan_loss(prediction, False).item() == pytest.approx((0.25 + 0 + 4) / 3)
    a, b = torch.tensor([0.0, 1.0, -1.0, 0.5]), torch.tensor([0.5, 1.0, 1.0, 0.0])
    assert cycle_consistency_loss(a, b).item() == pytest.approx((0.5 + 0 + 2 + 0.5) / 4)
    assert identity_loss(a, b).item() == pytest.approx(0.75)


class Shift(nn.Module):
    def __init__(self, amount: float) -> None:
        super().__init__()
        self.amount = amount

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.amount


class Constant(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1, 2, 2), self.value)


def test_model_losses_are_weighted_and_in_signed_space() -> None:
    model = CycleGANModel(CycleGANOptions(**TINY))
    model.netG_A, model.netG_B = Shift(0.1), nn.Identity()  # G_B(G_A(a)) = a + 0.1 in [-1, 1] units
    model.netD_A, model.netD_B = Constant(0.25), Constant(0.5)
    model.set_input({"A": torch.rand(2, 3, 8, 8), "B": torch.rand(2, 3, 8, 8)})
    model.forward()
    losses = {k: v.item() for k, v in model.generator_losses().items()}
    assert losses["cycle_A"] == pytest.approx(10 * 0.1, rel=1e-5)     # lambda * 0.1 (0.05 if it were in [0, 1])
    assert losses["cycle_B"] == pytest.approx(10 * 0.1, rel=1e-5)
    assert losses["idt_A"] == pytest.approx(10 * 0.5 * 0.1, rel=1e-5)  # lambda * 0.5 * ||G_A(b) - b||_1
    assert losses["idt_B"] == pytest.approx(0.0)
    assert losses["G_A"] == pytest.approx((0.25 - 1) ** 2) and losses["G_B"] == pytest.approx(0.25)
    d_a = model.discriminator_loss(model.netD_A, model.real_B, model.fake_B).item()
    assert d_a == pytest.approx(0.5 * ((0.25 - 1) ** 2 + 0.25**2))  # halved, as in the reference


def test_options_are_the_papers_and_lr_decays_linearly() -> None:
    o = CycleGANOptions()
    assert (o.lambda_cycle, o.lambda_identity, o.pool_size, o.lr, o.beta1) == (10.0, 0.5, 50, 2e-4, 0.5)
    assert (o.n_epochs, o.n_epochs_decay, o.size, o.load_size, o.ngf, o.ndf, o.n_blocks) == (100, 100, 256, 286, 64, 64, 9)
    factor = cyclegan.linear_decay_factor(2, 3)
    assert [factor(e) for e in range(6)] == pytest.approx([1, 1, 0.75, 0.5, 0.25, 0])


# ---------------------------------------------------------------------------------------------- image pool
def test_image_pool_fills_then_swaps_half_the_time() -> None:
    pool = ImagePool(pool_size=3, seed=1)
    first = [torch.full((1, 3, 2, 2), float(i)) for i in range(3)]
    for image in first:
        assert torch.equal(pool.query(image), image)  # returned unchanged while filling
    assert sorted(p.mean().item() for p in pool.images) == [0.0, 1.0, 2.0]
    swaps = 0
    for i in range(3, 403):
        image = torch.full((1, 3, 2, 2), float(i))
        before = [p.mean().item() for p in pool.images]
        returned = pool.query(image).mean().item()
        if returned != i:
            swaps += 1
            assert returned in before and float(i) in [p.mean().item() for p in pool.images]
        else:
            assert [p.mean().item() for p in pool.images] == before
    assert len(pool) == 3 and 160 <= swaps <= 240  # Binomial(400, 1/2): mean 200, sd 10
    assert torch.equal(ImagePool(0).query(first[1]), first[1])


def test_image_pool_state_round_trip(tmp_path: Path) -> None:
    pool = ImagePool(pool_size=4, seed=3)
    for i in range(10):
        pool.query(torch.rand(2, 3, 4, 4))
    torch.save(pool.state_dict(), tmp_path / "pool.pt")
    restored = ImagePool(pool_size=4, seed=99)
    restored.load_state_dict(torch.load(tmp_path / "pool.pt", weights_only=True))
    queries = torch.rand(20, 1, 3, 4, 4)
    for query in queries:
        assert torch.equal(pool.query(query), restored.query(query))
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(pool_size=5).load_state_dict(pool.state_dict())


# -------------------------------------------------------------------------------------------------- training
def test_training_lowers_the_cycle_loss(tmp_path: Path) -> None:
    photos, paintings = make_domains(tmp_path, 5, 5)
    options = CycleGANOptions(**TINY, n_epochs=10, n_epochs_decay=0)
    exp = cyclegan.train_cyclegan(photos, paintings, tmp_path / "run", options, max_iterations=0,
                                  hold_out_photos=1, hold_out_paintings=1, progress=False)
    before = exp.evaluate()
    exp = cyclegan.train_cyclegan(photos, paintings, tmp_path / "run", options,
                                  hold_out_photos=1, hold_out_paintings=1, progress=False)
    after = exp.evaluate()
    assert exp.epoch == 10 and exp.iteration == 40
    cycle = [h["cycle_A"] + h["cycle_B"] for h in exp.history]  # weighted training losses, per epoch
    assert (cycle[-1] + cycle[-2]) / 2 < 0.85 * cycle[0]
    # Held-out images (centre crops): mean L1 of the reconstructions in [0, 1] units.
    assert after["cycle_l1_A"] + after["cycle_l1_B"] < 0.8 * (before["cycle_l1_A"] + before["cycle_l1_B"])
    visuals = exp.model.visuals()
    assert list(visuals) == ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
    assert all(0 <= v.min() and v.max() <= 1 for v in visuals.values())


def test_training_without_held_out_paintings_has_no_validation(tmp_path: Path) -> None:
    """--hold-out-paintings 0 (e.g. a curated painting folder judged elsewhere) trains on every painting."""
    photos, paintings = make_domains(tmp_path, 5, 4)
    options = CycleGANOptions(**TINY, n_epochs=1, n_epochs_decay=0)
    exp = cyclegan.train_cyclegan(photos, paintings, tmp_path / "run", options, hold_out_photos=1,
                                  hold_out_paintings=0, progress=False, device="cpu")
    assert exp.val_set is None and len(exp.train_set.domain_b) == 4 and exp.iteration > 0
    with pytest.raises(ValueError, match="val_set"):
        exp.evaluate()


@pytest.mark.cpu_only("bit-exact resume: CUDA kernels (ReflectionPad2d backward, atomicAdd) are not deterministic")
def test_resume_equals_uninterrupted_training(tmp_path: Path) -> None:
    photos, paintings = make_domains(tmp_path)
    options = CycleGANOptions(**TINY, n_epochs=2, n_epochs_decay=2)  # 3 images per epoch, 12 iterations
    kwargs = dict(hold_out_photos=1, hold_out_paintings=1, checkpoint_every=2, progress=False, device="cpu")
    straight = cyclegan.train_cyclegan(photos, paintings, tmp_path / "straight", options, **kwargs)
    cyclegan.train_cyclegan(photos, paintings, tmp_path / "resumed", options, max_iterations=7, **kwargs)
    resumed = cyclegan.train_cyclegan(photos, paintings, tmp_path / "resumed", options, **kwargs)  # rebuilt
    assert straight.iteration == resumed.iteration == 12
    for name, network in straight.model.networks.items():
        for key, value in network.state_dict().items():
            assert torch.equal(value, resumed.model.networks[name].state_dict()[key]), f"{name}.{key}"
    for a, b in zip(straight.model.fake_A_pool.images, resumed.model.fake_A_pool.images):
        assert torch.equal(a, b)
    assert [h["cycle_A"] for h in straight.history] == [h["cycle_A"] for h in resumed.history]
    # Constant lr for 2 epochs, then 1 - k/3: the lr recorded during each epoch, and zero at the end.
    assert [h["lr"]["G"] for h in resumed.history] == pytest.approx([1e-3, 1e-3, 1e-3 * 2 / 3, 1e-3 / 3])
    assert resumed.model.optimizer_G.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------------- weights and errors
def test_export_load_round_trip_and_wrong_size_error(tmp_path: Path) -> None:
    model = CycleGANModel(CycleGANOptions(**TINY))
    recipe = {"ngf": 4, "n_blocks": 1, "upsampling": "transpose", "size": 32}
    paths = cyclegan.export_generators(model, recipe, assets_dir=tmp_path)
    assert {p.name for p in paths.values()} == {"cyclegan_photo2painting.pth", "cyclegan_painting2photo.pth"}
    generator = cyclegan.load_generator("photo2painting", assets_dir=tmp_path, precision="fp32")
    image = torch.rand(1, 3, 20, 28)  # fp16 storage only (fp32 compute: "auto" is bf16 on an AVX512-BF16 CPU)
    torch.testing.assert_close(translate(generator, image), translate(model.netG_A, image, "fp32"), atol=5e-3, rtol=0)
    with pytest.raises(weights.WeightsError, match=r"expected a ResnetGenerator with ngf=8, n_blocks=1.*shape mismatch"):
        cyclegan.load_generator("photo2painting", ngf=8, assets_dir=tmp_path)
    with pytest.raises(weights.WeightsError, match=r"n_blocks=3.*missing keys"):
        cyclegan.load_generator("painting2photo", n_blocks=3, assets_dir=tmp_path)
    with pytest.raises(ValueError, match="direction"):
        cyclegan.load_generator("photo2sculpture", assets_dir=tmp_path)



def test_warm_start_converts_transposed_upsampling_and_keeps_the_rest(tmp_path: Path) -> None:
    shipped = CycleGANModel(CycleGANOptions(**TINY, upsampling="transpose"), seed=3)
    recipe = {"ngf": 4, "n_blocks": 1, "upsampling": "transpose", "size": 32, "iterations": 1300}
    cyclegan.export_generators(shipped, recipe, assets_dir=tmp_path / "assets")
    photos, paintings = make_domains(tmp_path)
    options = CycleGANOptions(**TINY, upsampling="resize")
    kwargs = dict(hold_out_photos=1, hold_out_paintings=1, progress=False, device="cpu")
    exp = cyclegan.train_cyclegan(photos, paintings, tmp_path / "run", options, max_iterations=0,
                                  init_from=tmp_path / "assets", **kwargs)
    exported = cyclegan.load_generator("photo2painting", assets_dir=tmp_path / "assets", device="cpu")
    warm = exp.model.netG_A
    # everything before the upsampling is the exported network (fp16-rounded): same features
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(warm.model[:11](x), exported.model[:11](x), rtol=0, atol=0)  # 1 block
    # the first upsampling layer: conv kernel [o, i, a, b] = transposed kernel [i, o, 2 - a, 2 - b]
    transposed, converted = exported.model[11].weight, warm.model[13].weight
    assert converted.shape == (8, 16, 3, 3) and transposed.shape == (16, 8, 3, 3)
    assert converted[5, 11, 0, 2] == transposed[11, 5, 2, 0] and converted[1, 2, 1, 1] == transposed[2, 1, 1, 1]
    # the discriminators start as in a fresh run
    fresh = CycleGANModel(options)
    for key, value in fresh.netD_A.state_dict().items():
        assert torch.equal(value, exp.model.netD_A.state_dict()[key])
    recorded = cyclegan.training_recipe(exp)["warm_start"]
    assert recorded["G_A"]["converted_transposed_convolutions"] == 2 and recorded["G_B"]["iterations"] == 1300
    # a resumed run keeps its own weights (init_from is ignored)
    cyclegan.train_cyclegan(photos, paintings, tmp_path / "run", options, max_iterations=2, **kwargs)
    resumed = cyclegan.train_cyclegan(photos, paintings, tmp_path / "run", options, max_iterations=2,
                                      init_from=tmp_path / "nowhere", **kwargs)
    assert resumed.iteration == 2 and cyclegan.training_recipe(resumed)["warm_start"] == recorded
    with pytest.raises(ValueError, match="resize-convolution generator into a transposed"):
        cyclegan.copy_generator_weights(warm, shipped.netG_A)

def test_missing_or_empty_domain_folder_errors_name_it(tmp_path: Path) -> None:
    photos, paintings = make_domains(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"Photo \(domain A\).*nowhere"):
        cyclegan.train_cyclegan(tmp_path / "nowhere", paintings, tmp_path / "run", CycleGANOptions(**TINY))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"Painting \(domain B\).*empty.*no images"):
        cyclegan.train_cyclegan(photos, tmp_path / "empty", tmp_path / "run", CycleGANOptions(**TINY))


def test_gram_statistic_prefers_the_matching_set() -> None:
    torch.manual_seed(0)
    from models import VGGFeatures

    vgg = VGGFeatures(layers=list(evaluation.GRAM_LAYERS), weights=None)
    init_weights(vgg, 0.1)
    smooth = [torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32) * c for c in (0.3, 0.6, 0.9)]
    noisy = [torch.rand(1, 3, 32, 32) for _ in range(3)]
    smooth_centroid, noisy_centroid = evaluation.mean_grams(vgg, smooth), evaluation.mean_grams(vgg, noisy)
    assert evaluation.gram_distance(vgg, smooth[:1], evaluation.mean_grams(vgg, smooth[:1])) == pytest.approx(0, abs=1e-6)
    statistic = evaluation.style_statistic(vgg, [torch.rand(1, 3, 32, 32)], smooth_centroid, noisy_centroid)
    assert statistic["to_paintings"] < statistic["to_photos"] and statistic["ratio_paintings_over_photos"] < 1


def test_evaluate_shipped_uses_recipe_hold_out_and_untrained_baseline(tmp_path: Path) -> None:
    from models import VGGFeatures

    photos, paintings = make_domains(tmp_path)
    options = CycleGANOptions(**TINY)
    model = CycleGANModel(options, seed=0)  # exported untrained: must equal the evaluation's untrained baseline
    recipe = {"ngf": 4, "ndf": 4, "n_blocks": 1, "upsampling": "transpose", "size": 32, "seed": 0,
              "data": {"held_out_photos": ["photo0.png", "photo2.png"], "held_out_paintings": ["painting1.png"]}}
    cyclegan.export_generators(model, recipe, assets_dir=tmp_path / "assets")
    vgg = init_weights(VGGFeatures(layers=list(evaluation.GRAM_LAYERS), weights=None), 0.1)
    results = evaluation.evaluate_shipped(photos, paintings, size=32, assets_dir=tmp_path / "assets", vgg=vgg)
    assert results["held_out_photos"] == ["photo0.png", "photo2.png"]
    assert (results["reference_photos"], results["reference_paintings"]) == (2, 3)
    assert results["cycle_l1_photo"] == pytest.approx(results["untrained_cycle_l1_photo"], rel=1e-3)  # fp16 export
    trained, untrained = results["style"]["G_A(photos): generated paintings"], results["style"]["untrained G_A(photos)"]
    assert trained["to_photos"] == pytest.approx(untrained["to_photos"], rel=1e-3)
    table = evaluation.evidence_table(results)
    assert "| held-out photos (input) |" in table and "untrained generators" in table


def test_one_loss_scale_update_per_iteration(tmp_path: Path) -> None:
    """G and D share one GradScaler: its scale is updated once per iteration (AMP docs), not after each optimizer.
    growth_interval=1 doubles the scale at every update with finite gradients: 2^10 -> 2^11 after one iteration."""
    model = CycleGANModel(CycleGANOptions(**TINY))
    model.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    model.set_input({"A": torch.rand(1, 3, 32, 32), "B": torch.rand(1, 3, 32, 32)})
    before = [p.detach().clone() for p in model.netG_A.parameters()] + [p.detach().clone() for p in model.netD_A.parameters()]
    model.optimize_parameters()
    assert model.scaler.get_scale() == 2.0**11
    after = list(model.netG_A.parameters()) + list(model.netD_A.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # both optimizers stepped


def _eval_cyclegan_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("eval_cyclegan", Path(__file__).parents[1] / "bench" / "eval_cyclegan.py")
    eval_cyclegan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eval_cyclegan)
    return eval_cyclegan


def test_shipping_an_export_keeps_the_weights_and_adds_numbers_and_chain_hours(tmp_path: Path) -> None:
    eval_cyclegan = _eval_cyclegan_script()
    model = CycleGANModel(CycleGANOptions(**TINY, upsampling="resize"))
    chain = {"G_A": {"wall_time_s": 1800.0, "warm_start": {"G_A": {"wall_time_s": 3600.0, "warm_start": None}}}}
    recipe = {"ngf": 4, "n_blocks": 1, "upsampling": "resize", "size": 32, "wall_time_s": 900.0, "warm_start": chain}
    cyclegan.export_generators(model, recipe, assets_dir=tmp_path / "export")
    eval_cyclegan.ship(tmp_path / "export", tmp_path / "assets", {"cycle_l1_photo": 0.1})
    for direction in cyclegan.DIRECTIONS:
        name = f"cyclegan_{direction}.pth"
        assert (tmp_path / "assets" / name).read_bytes() == (tmp_path / "export" / name).read_bytes()
        shipped = weights.read_manifest(tmp_path / "assets" / "MANIFEST.json")[name]["recipe"]
        assert shipped["cpu_hours_chain"] == 1.75 and shipped["heldout_256"] == {"cycle_l1_photo": 0.1}  # 900+1800+3600 s
    cyclegan.load_generator("painting2photo", assets_dir=tmp_path / "assets")  # SHA-256 checked


def test_campaign_figure_plots_the_probe_against_cpu_hours_and_skips_rows_older_than_a_measure(tmp_path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    numbers = {"cycle_l1_photo": 0.1, "cycle_l1_painting": 0.09, "checkerboard_generated_paintings": 1.0,
               "checkerboard_generated_photos": 1.0, "generated_paintings_called_paintings": 0.25,
               "generated_photos_called_photos": 0.8}
    rows = [{**numbers, "cpu_hours": 1.0, "shipped": True},  # older than the mean probability
            {**numbers, "cpu_hours": 3.0, "shipped": True, "generated_paintings_mean_p": 0.3},
            {**numbers, "cpu_hours": 2.0, "shipped": False, "label": "arm b", "generated_paintings_mean_p": 0.5}]
    figure = _eval_cyclegan_script().plot(rows, tmp_path / "campaign.png")
    assert (tmp_path / "campaign.png").stat().st_size > 0
    probe = next(axis for axis in figure.axes if axis.get_title().startswith("Painting probe"))
    lines = {line.get_label(): line for line in probe.get_lines()}
    assert list(lines["generated paintings called paintings, shipped chain"].get_xdata()) == [1.0, 3.0]
    assert list(lines["generated paintings, mean p(painting), shipped chain"].get_ydata()) == [0.3]
    assert list(lines["target 0.7"].get_ydata()) == [0.7, 0.7]
    assert "takes 25% of the shipped" in figure.get_suptitle() and "x 1: arm b" in figure.get_suptitle()


def test_eval_script_refuses_unseen_photos_without_unseen_paintings(tmp_path: Path) -> None:
    script = Path(__file__).parents[1] / "bench" / "eval_cyclegan.py"
    result = subprocess.run([sys.executable, str(script), str(tmp_path), "--unseen-photos", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--unseen-photos and --unseen-paintings go together" in result.stderr


@pytest.mark.parametrize("hours, expected", [((7.21, 5.46), "runs of 7.2 and 5.5 CPU-hours (128 px"),
                                             ((5.46, 5.46), "a 5.5 CPU-hour run (128 px")])
def test_shipped_summary_names_both_chains_when_the_directions_differ(tmp_path: Path, hours, expected) -> None:
    recipe = {"size": 128, "ngf": 32, "n_blocks": 6, "upsampling": "resize"}
    manifest = {f"cyclegan_{d}.pth": {"recipe": {**recipe, "cpu_hours_chain": h}}
                for d, h in zip(("photo2painting", "painting2photo"), hours)}
    (tmp_path / "MANIFEST.json").write_text(json.dumps(manifest))
    assert cyclegan.shipped_summary(tmp_path).startswith(expected)


def test_eval_script_names_a_missing_unseen_folder_in_one_line(tmp_path: Path) -> None:
    script = Path(__file__).parents[1] / "bench" / "eval_cyclegan.py"
    result = subprocess.run([sys.executable, str(script), str(tmp_path), "--unseen-photos", str(tmp_path / "missing"),
                             "--unseen-paintings", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "--unseen-photos folder: Image folder not found" in result.stderr
    assert "Traceback" not in result.stderr
