"""Held-out metrics of evaluation.py: the checkerboard index on images whose spectrum is known by hand, the painting
probe on separable features, and the CycleGAN report on generators whose outputs are known."""
from __future__ import annotations

import math

import evaluation
import pytest
import torch
from torch import nn


def grey_image(luminance: torch.Tensor) -> torch.Tensor:
    """RGB image with equal channels, so the Rec. 601 luminance is the value itself."""
    return luminance.expand(3, *luminance.shape).clone()


def nyquist_plus_inner_cosine(a: float, b: float, height: int = 32, width: int = 48) -> torch.Tensor:
    """0.5 + a (-1)^x + b cos(2 pi (W/2 - 3) x / W), constant along y."""
    x = torch.arange(width, dtype=torch.float64)
    row = 0.5 + a * torch.cos(math.pi * x) + b * torch.cos(2 * math.pi * (width // 2 - 3) * x / width)
    return grey_image(row.expand(height, width))


@pytest.mark.parametrize("a, b, expected", [(0.1, 0.2, 1.0), (0.2, 0.1, 4.0), (0.05, 0.2, 0.5)])
def test_checkerboard_index_by_hand(a: float, b: float, expected: float) -> None:
    # Only row 0 of the spectrum is non-zero: |F| = a H W at column W/2 and b H W / 2 at columns W/2 +- 3. The Nyquist
    # row and column hold H + W entries summing to a H W; the four inner lines hold 2H + 2W entries summing to b H W.
    # So the index is (a H W / (H + W)) / (b H W / (2 (H + W))) = 2a / b.
    assert evaluation.checkerboard_index(nyquist_plus_inner_cosine(a, b)) == pytest.approx(expected, rel=1e-9)


def test_checkerboard_index_sees_a_period_two_pattern() -> None:
    torch.manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 68, 68), 5, 1).squeeze(0)  # 64x64, low-pass
    y, x = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checker = 0.05 * ((-1.0) ** (x + y)).float()  # a pure Nyquist-Nyquist checkerboard
    checker_rows = 0.05 * ((-1.0) ** x).float()   # period 2 along x, like one transposed conv's pattern
    base = evaluation.checkerboard_index(smooth)
    assert evaluation.checkerboard_index(smooth + checker_rows) > 3 * base
    assert evaluation.checkerboard_index(smooth + checker) > 3 * base  # its one bin lies on both Nyquist lines


def test_checkerboard_index_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="RGB"):
        evaluation.checkerboard_index(torch.rand(1, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        evaluation.checkerboard_index(torch.rand(3, 8, 8))


def test_normalisation_spikes_of_a_single_outlier_by_hand() -> None:
    """A 1x1 convolution passes the red channel (as 2x - 1: -1 everywhere, +1 at one pixel) to an instance norm.
    Over N = 64 values with one outlier, z = (N - 1)/N / sqrt((N - 1)/N^2) = sqrt(N - 1) = sqrt(63), both before the
    first norm and before the second (a norm keeps z); the spike is at row 2, column 5 of the 8x8 map."""
    pick_red = nn.Conv2d(3, 1, 1, bias=False)
    pick_red.weight.data = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    generator = nn.Sequential(pick_red, nn.InstanceNorm2d(1), nn.InstanceNorm2d(1))
    image = torch.zeros(3, 8, 8)
    image[0, 2, 5] = 1.0
    image[1:] = torch.rand(2, 8, 8)  # ignored by the convolution
    spikes = evaluation.normalisation_spikes(generator, image)
    assert [spike.layer for spike in spikes] == ["1", "2"]
    for spike in spikes:
        assert spike.z == pytest.approx(math.sqrt(63), rel=1e-5)
        assert (spike.channel, spike.row, spike.column) == (0, 2 / 8, 5 / 8)


def test_normalisation_spikes_leave_no_hooks_behind() -> None:
    norm = nn.InstanceNorm2d(3)
    generator = nn.Sequential(norm)
    evaluation.normalisation_spikes(generator, torch.rand(3, 8, 8))
    assert not norm._forward_hooks


def test_probe_separates_and_ignores_feature_offsets() -> None:
    generator = torch.Generator().manual_seed(0)
    photos = torch.randn(40, 6, generator=generator, dtype=torch.float64)
    paintings = torch.randn(10, 6, generator=generator, dtype=torch.float64)
    paintings[:, 2] += 4.0  # the classes differ in one feature only
    probe = evaluation.PaintingProbe.fit(photos, paintings)
    assert probe.fraction_paintings(paintings) == 1.0
    assert probe.fraction_paintings(photos) == 0.0
    shifted = evaluation.PaintingProbe.fit(photos + 100.0, paintings + 100.0)  # standardisation removes the offset
    test = torch.randn(20, 6, generator=generator, dtype=torch.float64) + torch.tensor([0, 0, 2.0, 0, 0, 0])
    assert torch.allclose(probe.painting_probability(test), shifted.painting_probability(test + 100.0), atol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        evaluation.PaintingProbe.fit(photos[:0], paintings)


class TinyVGG(nn.Module):
    """Stands in for VGGFeatures: 'relu1_1' is the image itself, so channel statistics are per-colour mean/std."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("anchor", torch.zeros(1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"relu1_1": image}


def one_by_one(weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(weight.view(3, 3, 1, 1))
        conv.bias.copy_(bias)
    conv.precision = "fp32"  # translate() runs it as is ("auto" would be bf16 on an AVX512-BF16 CPU)
    return conv


def test_channel_statistics_are_mean_and_std() -> None:
    image = torch.rand(3, 8, 8)
    features = evaluation.channel_statistics(TinyVGG(), [image], layers=("relu1_1",))
    expected = torch.cat([image.flatten(1).mean(1), image.flatten(1).std(1)]).double()
    assert torch.allclose(features[0], expected, atol=1e-6)


def test_evaluate_cyclegan_identity_and_darkening_generators() -> None:
    torch.manual_seed(0)
    photos = [0.6 + 0.3 * torch.rand(3, 16, 20) for _ in range(3)]    # bright
    paintings = [0.1 + 0.3 * torch.rand(3, 16, 20) for _ in range(3)]  # dark
    vgg = TinyVGG()
    probe = evaluation.PaintingProbe.fit(evaluation.channel_statistics(vgg, photos, ("relu1_1",)),
                                         evaluation.channel_statistics(vgg, paintings, ("relu1_1",)),
                                         layers=("relu1_1",))
    identity = one_by_one(torch.eye(3), torch.zeros(3))
    result = evaluation.evaluate_cyclegan(identity, identity, photos, paintings, probe, vgg)
    assert result["cycle_l1_photo"] == pytest.approx(0.0, abs=1e-6)
    assert result["cycle_l1_painting"] == pytest.approx(0.0, abs=1e-6)
    assert result["generated_paintings_called_paintings"] == 0.0  # unchanged photos still look like photos
    assert result["generated_photos_called_photos"] == 0.0
    assert result["real_paintings_called_paintings"] == 1.0 and result["real_photos_called_photos"] == 1.0
    # the photos, unchanged, get the probe's p(painting) of a photo: low, and the same as the p(painting) of the
    # identical input computed by the probe itself
    p_photos = probe.painting_probability(evaluation.channel_statistics(vgg, photos, ("relu1_1",)))
    assert result["generated_paintings_mean_p"] == pytest.approx(float(p_photos.mean()), rel=1e-6)
    assert result["generated_paintings_mean_p"] < 0.5 and result["generated_photos_mean_p"] < 0.5
    assert result["checkerboard_generated_paintings"] == pytest.approx(result["checkerboard_real_photos"], rel=1e-5)
    # G_A maps [-1, 1] x to x - 1 (clamped): photos in 0.6..0.9 become 0.1..0.4, painting-dark; G_B is the inverse.
    darken, brighten = one_by_one(torch.eye(3), -torch.ones(3)), one_by_one(torch.eye(3), torch.ones(3))
    result = evaluation.evaluate_cyclegan(darken, brighten, photos, paintings, probe, vgg)
    assert result["generated_paintings_called_paintings"] == 1.0
    assert result["generated_photos_called_photos"] == 1.0
    assert result["generated_paintings_mean_p"] > 0.5 and result["generated_photos_mean_p"] > 0.5
    assert result["cycle_l1_photo"] == pytest.approx(0.0, abs=1e-6)  # no clamping happened on the way


def test_cyclegan_history_has_one_row_per_kept_epoch_and_the_untrained_cycle_error_falls(tmp_path) -> None:
    """A tiny run keeping every epoch's checkpoint: one row per copy (the last checkpoint is the last copy, not
    repeated), iterations in order, and the held-out cycle error after training below that of epoch 1."""
    import cyclegan
    from test_cyclegan import TINY, make_domains

    photos, paintings = make_domains(tmp_path, photos=5, paintings=5)
    options = cyclegan.CycleGANOptions(**TINY, n_epochs=4, n_epochs_decay=0)
    cyclegan.train_cyclegan(photos, paintings, tmp_path / "run", options, hold_out_photos=1, hold_out_paintings=1,
                            keep_every_epochs=1, progress=False, device="cpu")
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint_epoch*.pth.tar")) == [
        f"checkpoint_epoch{e:04d}.pth.tar" for e in (1, 2, 3, 4)]
    rows = evaluation.cyclegan_history(tmp_path / "run", photos, paintings, size=32)
    assert [row["iteration"] for row in rows] == [4, 8, 12, 16]  # 4 training images a domain, batch 1
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert rows[-1]["cycle_l1_photo"] + rows[-1]["cycle_l1_painting"] < rows[0]["cycle_l1_photo"] + rows[0]["cycle_l1_painting"]
    assert all(0.0 <= row["generated_paintings_called_paintings"] <= 1.0 for row in rows)
    import figures

    fig = figures.plot_cyclegan_metrics(rows)
    cycle, probe, checkerboard = fig.axes
    assert list(cycle.lines[0].get_ydata()) == [row["cycle_l1_photo"] for row in rows]
    assert list(cycle.lines[0].get_xdata()) == [4, 8, 12, 16]
    targets = [[line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == ":"] for ax in fig.axes]
    assert targets == [[0.08], [0.7], [1.15]]
    assert len(checkerboard.lines) == 4 and len(probe.lines) == 3  # 3 / 2 series and the target line each


def test_cyclegan_report_of_identity_generators(tmp_path) -> None:
    """Generators that change nothing: no cycle error, generated images score exactly as the inputs they copy."""
    from test_cyclegan import make_domains

    photos, paintings = make_domains(tmp_path, photos=5, paintings=5)
    identity = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        identity.bias.zero_()
    identity.precision = "fp32"  # exact maths ("auto" is bf16 on an AVX512-BF16 CPU)
    report = evaluation.cyclegan_report(identity, identity, photos, paintings, ["photo0.png", "photo1.png"],
                                        ["painting0.png"], size=32)
    assert report["cycle_l1_photo"] == pytest.approx(0.0, abs=1e-6)
    assert report["cycle_l1_painting"] == pytest.approx(0.0, abs=1e-6)
    assert report["generated_paintings_called_paintings"] == pytest.approx(1.0 - report["real_photos_called_photos"])
    assert report["generated_photos_called_photos"] == pytest.approx(1.0 - report["real_paintings_called_paintings"])
    assert report["checkerboard_generated_paintings"] == pytest.approx(report["checkerboard_real_photos"], rel=1e-5)
