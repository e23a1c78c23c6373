"""Gatys optimisation end to end on tiny images: the loss falls, options behave, bad input gets clear errors."""
from __future__ import annotations

from pathlib import Path

import gatys
import imaging
import pytest
import torch
from gatys import GatysOptions, StyleTransfer, stylize_gatys
from imaging import load_image

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    return load_image(ASSETS / "carcassonne.jpg", 64), load_image(ASSETS / "starry_night.jpg", 64)


def quick(**overrides) -> GatysOptions:
    values = dict(size=64, iterations=30, progress=False, style_weight=1e6, channels_last=False)
    values.update(overrides)
    return GatysOptions(**values)


def test_lbfgs_lowers_total_loss_by_a_large_factor(images):
    content, style = images
    result = StyleTransfer(quick()).run(content, style)
    first, last = result.history[0], result.history[-1]
    assert len(result.history) == 30
    assert last["total"] < first["total"] / 5, (first, last)
    assert last["style"] < first["style"] / 5
    assert first["content"] == 0.0 and last["content"] > 0  # content init: starts on the photo, then trades off
    assert result.image.shape == content.shape and 0 <= result.image.min() and result.image.max() <= 1


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adagrad"])
def test_first_order_optimisers_lower_the_loss(images, optimizer):
    content, style = images
    result = StyleTransfer(quick(optimizer=optimizer, iterations=15, size=48)).run(content, style)
    assert result.history[-1]["total"] < 0.8 * result.history[0]["total"], optimizer


def test_noise_init_is_seeded_and_reproducible(images):
    content, style = images
    options = quick(init="noise", iterations=5, size=40, seed=3)
    first = StyleTransfer(options).run(content, style).image
    second = StyleTransfer(options).run(content, style).image
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_multiscale_runs_every_scale_and_ends_at_the_last_size(images):
    content, style = images
    result = StyleTransfer(quick(scales=(32, 64), iterations=(10, 5))).run(content, style)
    assert len(result.history) == 15 and max(result.image.shape[-2:]) == 64


def test_blend_targets_are_weighted_grams(images):
    content, style = images
    transfer = StyleTransfer(quick())
    other = torch.flip(style, dims=[3]) * 0.5
    blended = transfer.style_targets([style, other], [0.25, 0.75])
    single_a, single_b = transfer.style_targets([style], [1.0]), transfer.style_targets([other], [1.0])
    for name in blended:
        torch.testing.assert_close(blended[name], 0.25 * single_a[name] + 0.75 * single_b[name])


def test_luminance_transfer_keeps_the_content_colours(images):
    content, style = images
    result = StyleTransfer(quick(iterations=5, preserve_colors="luminance")).run(content, style)
    iq_result, iq_content = imaging.rgb_to_yiq(result.image)[:, 1:], imaging.rgb_to_yiq(content)[:, 1:]
    inside = ((result.image > 0.01) & (result.image < 0.99)).all(1, keepdim=True).expand_as(iq_result)
    torch.testing.assert_close(iq_result[inside], iq_content[inside], atol=2e-3, rtol=0)


def test_color_match_gives_content_mean_and_covariance(images):
    content, style = images
    matched = imaging.match_color(style * 0.6 + 0.2, content)

    def stats(x):
        pixels = x[0].reshape(3, -1).double()
        return pixels.mean(1), torch.cov(pixels, correction=0)

    (mean_m, cov_m), (mean_c, cov_c) = stats(matched), stats(content)
    torch.testing.assert_close(mean_m, mean_c, atol=2e-3, rtol=0)
    torch.testing.assert_close(cov_m, cov_c, atol=2e-3, rtol=0)


def test_snapshots_every_n_iterations(images):
    content, style = images
    calls = []
    StyleTransfer(quick(iterations=6, size=40, snapshot_every=2)).run(
        content, style, callback=lambda i, image, losses: calls.append((i, tuple(image.shape), losses["total"]))
    )
    assert [c[0] for c in calls] == [2, 4, 6] and all(c[1][:2] == (1, 3) for c in calls)


def test_too_large_image_is_downscaled_with_a_warning(images, monkeypatch):
    content, style = images
    monkeypatch.setattr(gatys, "available_memory", lambda device: 40 << 20)  # 40 MiB free
    with pytest.warns(UserWarning, match="downscaled"):
        result = StyleTransfer(quick(size=400, iterations=1)).run(content, style)
    assert max(result.image.shape[-2:]) < 400


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"style_weight": -1.0}, "style_weight must be a finite number >= 0"),
        ({"content_weight": 0.0, "style_weight": 0.0}, "both 0"),
        ({"style_layers": ["relu1_1", "conv6_1"]}, r"style_layers.*Valid names"),
        ({"content_layers": {"relu4_2": -1.0}}, "per-layer weights must be >= 0"),
        ({"optimizer": "newton"}, "optimizer must be one of"),
        ({"init": "zeros"}, "init must be"),
        ({"iterations": (10, 10)}, "2 entries but there are 1 scales"),
    ],
)
def test_bad_options_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        quick(**overrides).validate()


def test_bad_images_and_blend_weights(images):
    content, style = images
    with pytest.raises(ValueError, match=r"content image must have shape \(1, 3, H, W\)"):
        StyleTransfer(quick()).run(content[0], style)
    with pytest.raises(ValueError, match="style_blend_weights"):
        StyleTransfer(quick(style_blend_weights=[1.0])).run(content, [style, style])
    with pytest.raises(TypeError, match="Unknown option"):
        stylize_gatys(content, style, stlye_weight=3)


# ------------------------------------------------------------------------------- L-BFGS divergence guard
def quadratic_with_spikes(target: torch.Tensor, spike_at: set[int]):
    """sum w (x - target)^2 with w from 1 to 100 (ill-conditioned: L-BFGS needs tens of iterations), except that
    the evaluations numbered in ``spike_at`` (1-based) return 1e6 more, as a diverging L-BFGS step would."""
    calls = [0]
    w = torch.logspace(0, 2, target.numel()).reshape(target.shape)

    def objective(x: torch.Tensor) -> dict[str, torch.Tensor]:
        calls[0] += 1
        loss = (w * (x - target) ** 2).sum()
        return {"total": loss + 1e6 if calls[0] in spike_at else loss}
    return objective


def test_lbfgs_restarts_from_the_best_image_after_a_spike():
    torch.manual_seed(0)
    target, start = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    seen = []
    result = gatys.optimise_pixels(quadratic_with_spikes(target, {6}), start, 100, start_at=None,
                                   on_iteration=lambda x, record: seen.append((x.detach().clone(), record)))
    assert [record["restarts"] for _, record in seen[:7]] == [0, 0, 0, 0, 0, 1, 1]
    # the spike was evaluated at iteration 6's x; the lowest loss before it was iteration 5's, whose x iteration 4
    # produced: the image goes back there
    assert torch.equal(seen[5][0], seen[3][0])
    # and the minimisation goes on, down to float32's noise floor (where fresh L-BFGS steps overshoot and the
    # restarts take half steps instead of looping)
    assert seen[-1][1]["total"] < 1e-5 * seen[0][1]["total"] and torch.allclose(result, target, atol=1e-3)


def test_lbfgs_gives_up_after_repeated_divergence():
    objective = quadratic_with_spikes(torch.zeros(1, 3, 4, 4), set(range(3, 1000)))
    with pytest.raises(FloatingPointError, match="L-BFGS diverged 11 times in a row"):
        gatys.optimise_pixels(objective, torch.ones(1, 3, 4, 4), 50, start_at=None)


def test_lbfgs_guard_changes_nothing_without_a_spike():
    torch.manual_seed(1)
    target, start = torch.rand(1, 3, 5, 5), torch.rand(1, 3, 5, 5)
    seen = []
    guarded = gatys.optimise_pixels(quadratic_with_spikes(target, set()), start, 15, start_at=None,
                                    on_iteration=lambda x, record: seen.append(record))
    objective = quadratic_with_spikes(target, set())
    x = start.clone().requires_grad_(True)
    plain = torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=gatys.LBFGS_HISTORY, tolerance_grad=-1,
                              tolerance_change=-1)

    def closure() -> torch.Tensor:
        plain.zero_grad()
        loss = objective(x)["total"]
        loss.backward()
        return loss
    for _ in range(15):
        plain.step(closure)
    assert torch.equal(guarded, x.detach()) and seen[-1]["restarts"] == 0


def test_projected_lbfgs_keeps_every_iterate_in_range_and_finds_the_box_minimum():
    """A separable quadratic whose minimum lies partly outside [0, 1]: its minimum over the box is the target
    clamped to [0, 1]; projected L-BFGS stays in the box at every iteration and gets there."""
    torch.manual_seed(2)
    target, start = torch.rand(1, 3, 5, 5) * 2 - 0.5, torch.rand(1, 3, 5, 5)
    assert (target < 0).any() and (target > 1).any()
    seen = []
    result = gatys.optimise_pixels(quadratic_with_spikes(target, set()), start, 100, start_at=None, project=True,
                                   on_iteration=lambda x, record: seen.append((float(x.min()), float(x.max()))))
    assert all(0 <= low and high <= 1 for low, high in seen)
    assert torch.allclose(result, target.clamp(0, 1), atol=1e-3)
    unprojected = gatys.optimise_pixels(quadratic_with_spikes(target, set()), start, 100, start_at=None)
    assert unprojected.min() < -0.2 and unprojected.max() > 1.2  # without it, x follows the target out of range
