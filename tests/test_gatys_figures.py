"""The train_gatys.ipynb helpers on tiny images: real runs, labelled figures, and the comparisons they claim."""
from __future__ import annotations

from pathlib import Path

import figures
import imaging
import pytest
import torch
from gatys import GatysOptions, style_weight_for_size

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CONTENT, STYLE_A, STYLE_B = ASSETS / "carcassonne.jpg", ASSETS / "starry_night.jpg", ASSETS / "great_wave.jpg"


def tiny(**overrides) -> GatysOptions:
    values = dict(size=40, iterations=6, progress=False, style_weight=1e6, channels_last=False)
    values.update(overrides)
    return GatysOptions(**values)


def test_style_weight_keeps_the_balance_of_the_losses_across_sizes():
    """What beta(size) is for: beta * E_l / L_content stays the same when the image has 4x the pixels (here the
    same features at twice the resolution: L_content (eq. 1) quadruples, E_l (eq. 4) does not change)."""
    from losses import content_loss, gram_matrix, style_layer_loss

    generator = torch.Generator().manual_seed(0)
    features, target = torch.rand(1, 3, 4, 4, generator=generator), torch.rand(1, 3, 4, 4, generator=generator)
    style = torch.rand(1, 3, 4, 4, generator=generator)

    def balance(size: int, scale: int) -> float:
        up = lambda x: torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
        style_gram = gram_matrix(up(style)) / scale**2  # same style statistics per position
        e_l = style_layer_loss(up(features), style_gram * scale**2)
        return style_weight_for_size(size) * e_l.item() / content_loss(up(features), up(target)).item()

    assert style_weight_for_size(512) == 1e7  # the calibrated value is returned unchanged at 512 px
    assert balance(512, 2) == pytest.approx(balance(256, 1), rel=1e-5)
    assert balance(1024, 4) == pytest.approx(balance(256, 1), rel=1e-5)


def test_one_photo_many_styles_runs_each_style(tmp_path):
    results, figure = figures.one_photo_many_styles(CONTENT, [STYLE_A, STYLE_B], tiny(), tmp_path)
    assert len(results) == 2 and (tmp_path / "styles.png").exists()
    assert not torch.equal(results[0].image, results[1].image)  # different styles, different images
    assert all(r.final_loss < r.history[0]["total"] for r in results)


def test_blends_endpoints_equal_single_styles(tmp_path):
    results, _ = figures.blended_styles(CONTENT, STYLE_A, STYLE_B, tiny(), fractions=(1.0, 0.5, 0.0), output_dir=tmp_path)
    single, _ = figures.one_photo_many_styles(CONTENT, [STYLE_A], tiny())
    torch.testing.assert_close(results[0].image, single[0].image)  # 100 % of style a is style a alone
    assert not torch.equal(results[1].image, results[0].image)


def test_original_colours_keeps_chroma(tmp_path):

    results, figure = figures.original_colours(CONTENT, STYLE_A, tiny(iterations=3), tmp_path)
    content = results[1].image  # luminance-only result has the content's I/Q where not clipped
    original = imaging.load_image(CONTENT, 40)
    iq_out, iq_in = imaging.rgb_to_yiq(content)[:, 1:], imaging.rgb_to_yiq(original)[:, 1:]
    inside = ((content > 0.01) & (content < 0.99)).all(1, keepdim=True).expand_as(iq_out)
    torch.testing.assert_close(iq_out[inside], iq_in[inside], atol=2e-3, rtol=0)
    assert len(figure.axes) == 5


def test_multiscale_and_snapshots_and_curves(tmp_path):
    runs, _ = figures.multiscale_versus_single(CONTENT, STYLE_A, tiny(), scales=(32, 48), iterations=(4, 3), output_dir=tmp_path)
    assert len(runs["multi"].history) == len(runs["single"].history) == 7
    assert runs["multi"].image.shape == runs["single"].image.shape and max(runs["multi"].image.shape[-2:]) == 48
    result, figure = figures.snapshots(CONTENT, STYLE_A, tiny(iterations=4), every=2, output_dir=tmp_path)
    assert [axis.get_title() for axis in figure.axes][1].startswith("iteration 2")
    figure = figures.loss_curves({"a": result, "b": runs["single"]}, tmp_path)
    assert {"multiscale.png", "snapshots.png", "losses.png"} <= {p.name for p in tmp_path.iterdir()}
    assert [line.get_label() for line in figure.axes[0].lines] == ["total", "alpha x content", "beta x style"]
