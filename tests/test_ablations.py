"""Ablation helpers: the paper's layer sets, sweeps that really optimise, reconstructions, CSV and calibration."""
from __future__ import annotations

import csv
from pathlib import Path

import ablations
import pytest
import torch
from gatys import GatysOptions
from imaging import load_image

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def images():
    return load_image(ASSETS / "carcassonne.jpg", 40), load_image(ASSETS / "starry_night.jpg", 40)


def tiny(**overrides) -> GatysOptions:
    values = dict(size=40, iterations=8, progress=False, style_weight=1e6, channels_last=False)
    values.update(overrides)
    return GatysOptions(**values)


def test_style_layer_sets_are_the_papers_rows():
    sets = ablations.style_layer_sets()
    assert sets[0] == ("relu1_1",) and sets[-1] == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert [len(s) for s in sets] == [1, 2, 3, 4, 5]
    assert ablations.short_name(sets[2]) == "relu1_1..relu3_1" and ablations.short_name(["relu4_2"]) == "relu4_2"


def test_sweep_optimises_each_configuration_and_writes_csv(images, tmp_path):
    content, style = images
    configurations = [{"style_layers": s, "style_weight": w} for s in ablations.style_layer_sets()[:2] for w in (1e4, 1e7)]
    rows = ablations.sweep(content, style, tiny(init="noise"), configurations, record_time=True)
    assert len(rows) == 4 and all(r["loss_total"] < r["loss_start"] for r in rows)
    assert all(len(r["iteration_seconds"]) == 8 for r in rows)
    # more style weight, lower final style loss (same layers)
    assert rows[1]["loss_style"] < rows[0]["loss_style"] and rows[3]["loss_style"] < rows[2]["loss_style"]
    path = ablations.write_csv(rows, tmp_path / "sweep.csv", {"size": 40})
    records = list(csv.DictReader(open(path)))
    assert len(records) == 4 and records[2]["style_layers"] == "relu1_1..relu2_1" and records[0]["size"] == "40"
    assert float(records[0]["loss_total"]) == pytest.approx(rows[0]["loss_total"], rel=1e-6)


def test_content_reconstruction_from_noise_approaches_the_photo(images):
    content, _ = images
    (row,) = ablations.reconstruct(content, "content", [("relu1_2",)], tiny(iterations=30))
    assert row["loss_content"] < 0.05 * row["loss_start"]
    noise_error = (torch.rand_like(content) - content).abs().mean()
    assert (row["image"] - content).abs().mean() < 0.6 * noise_error
    with pytest.raises(ValueError, match="kind must be"):
        ablations.reconstruct(content, "texture", [("relu1_1",)], tiny())


def test_balanced_weights(images):
    content, style = images
    base = tiny()
    assert ablations.balanced_weights(content, style, base, base) == pytest.approx((1.0, 1e6))
    alpha, beta = ablations.balanced_weights(content, style, base, tiny(weights="imagenet"))
    assert alpha < 1e-2 and beta < 1.0  # the ImageNet net's activations are much larger


def test_figures(images, tmp_path):
    content, style = images
    rows = ablations.sweep(content, style, tiny(iterations=3), [{"optimizer": "lbfgs"}, {"optimizer": "adam"}], record_time=True)
    figure = ablations.curves_figure(rows, ["lbfgs", "adam"], "seconds", "t", tmp_path / "c.png")
    assert [line.get_label() for line in figure.axes[0].lines] == ["lbfgs", "adam"]
    for line, row in zip(figure.axes[0].lines, rows):  # each curve is that run's total loss against its wall time
        assert list(line.get_xdata()) == row["iteration_seconds"]
        assert list(line.get_ydata()) == [h["total"] for h in row["history"]]
    assert figure.axes[0].get_yscale() == "log" and figure.axes[0].get_xlabel() == "wall time (s)"
    assert figure.axes[0].get_title() == "t"
    figure = ablations.grid_figure([[r["image"] for r in rows]], ["row"], ["a", "b"], "title", "caption", tmp_path / "g.png")
    for axis, row in zip(figure.axes, rows):  # each panel shows its own image, in order
        shown = torch.as_tensor(axis.get_images()[0].get_array()).permute(2, 0, 1)
        torch.testing.assert_close(shown, row["image"][0].clamp(0, 1))
    assert [a.get_title() for a in figure.axes] == ["a", "b"] and figure.axes[0].get_ylabel() == "row"
    assert figure._suptitle.get_text() == "title" and any(t.get_text() == "caption" for t in figure.texts)
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_captions_name_the_precision_that_ran(monkeypatch):
    """'auto' is shown as what it resolves to on the device (bf16 only where the CPU runs it natively)."""
    import runtime

    assert ablations.options_summary(GatysOptions(size=64, iterations=7, precision="fp32", device="cpu"), optimizer=False).startswith("7 iterations at 64 px")
    assert ablations.options_summary(GatysOptions(size=64, precision="fp32", device="cpu")).endswith(
        "fp32 (precision 'fp32')")
    for native, shown in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(runtime, "cpu_bf16_native", lambda native=native: native)
        summary = ablations.options_summary(GatysOptions(size=64, device="cpu"))
        assert summary.endswith(f"{shown} (precision 'auto')"), summary
