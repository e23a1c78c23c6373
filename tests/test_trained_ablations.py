"""Short-run ablation helpers (experiments/trained_ablations.py): real tiny trainings on synthetic image folders."""
from __future__ import annotations

import csv
import math

import cyclegan
import matplotlib
import pytest
import realtime
import torch
import trained_ablations
from imaging import save_image

matplotlib.use("Agg")


@pytest.fixture()
def folders(tmp_path):
    generator = torch.Generator().manual_seed(0)
    for name, count in (("photos", 6), ("paintings", 6)):
        for i in range(count):
            save_image(torch.rand(1, 3, 40, 48, generator=generator), tmp_path / name / f"{i}.png")
    save_image(torch.rand(1, 3, 32, 32, generator=generator), tmp_path / "style.png")
    return tmp_path


REALTIME_BASE = realtime.RealtimeOptions(image_size=32, batch_size=2, width=0.125, holdout=2, sample_every=100,
                                         style_size=32)
CYCLEGAN_BASE = cyclegan.CycleGANOptions(size=32, ngf=4, ndf=8, n_blocks=1, n_epochs=1, n_epochs_decay=0)


def test_realtime_runs_measure_each_checkpoint_and_resume(folders, monkeypatch):
    runs = trained_ablations.realtime_style_weights(folders / "photos", folders / "style.png", [0.5, 8.0],
                                                    REALTIME_BASE, folders / "runs", checkpoints=[0, 2, 4])
    assert [r.settings["style_weight"] for r in runs] == [0.5, 8.0]
    for run in runs:
        assert [c["iteration"] for c in run.checkpoints] == [0, 2, 4]
        for c in run.checkpoints:
            assert all(math.isfinite(c[k]) and c[k] > 0 for k in ("heldout_content", "heldout_style", "heldout_tv"))
        assert run.final["heldout_total"] < run.checkpoints[0]["heldout_total"]  # 4 Adam steps already help
        assert run.images[4]["output"].shape == run.images[4]["photo"].shape == (2, 3, 32, 32)
    # Same untrained network for both lambda_s: identical unweighted terms, so the held-out totals differ by exactly
    # (8.0 - 0.5) x the style term (a total that ignored the run's own lambda_s would be equal).
    start_low, start_high = runs[0].checkpoints[0], runs[1].checkpoints[0]
    for key in ("heldout_content", "heldout_style", "heldout_tv"):
        assert start_low[key] == pytest.approx(start_high[key], rel=1e-6), key
    assert start_high["heldout_total"] - start_low["heldout_total"] == pytest.approx(
        7.5 * start_low["heldout_style"], rel=1e-4)
    # same initial network for every lambda_s; after training, a larger lambda_s gives another network
    torch.testing.assert_close(runs[0].images[0]["output"], runs[1].images[0]["output"])
    assert not torch.equal(runs[0].images[4]["output"], runs[1].images[4]["output"])

    calls = []
    original = realtime.train_realtime
    monkeypatch.setattr(realtime, "train_realtime", lambda *a, **k: calls.append(a[3].iterations) or original(*a, **k))
    again = trained_ablations.realtime_style_weights(folders / "photos", folders / "style.png", [0.5],
                                                     REALTIME_BASE, folders / "runs", checkpoints=[0, 2, 4, 6])
    assert calls == [6]  # cached checkpoints are reused; only the new one trains (2 more iterations, resumed)
    torch.testing.assert_close(again[0].images[4]["output"], runs[0].images[4]["output"])
    assert [c["iteration"] for c in again[0].checkpoints] == [0, 2, 4, 6]
    assert again[0].checkpoints[-1]["seconds"] > again[0].checkpoints[-2]["seconds"]


def test_cyclegan_lambda_zero_removes_cycle_term(folders):
    variants = {"no_cycle": {"lambda_cycle": 0.0}, "no_identity": {"lambda_identity": 0.0}, "paper": {}}
    runs = trained_ablations.cyclegan_variants(folders / "photos", folders / "paintings", variants, CYCLEGAN_BASE,
                                               folders / "runs", checkpoints=[0, 3, 6], limit_images=None,
                                               hold_out=(2, 2))
    by_name = {r.name: r for r in runs}
    # 4 training images per domain, 6 iterations: the 1-epoch schedule was lengthened to reach the last checkpoint
    assert all([c["iteration"] for c in r.checkpoints] == [0, 3, 6] for r in runs)
    assert by_name["no_cycle"].settings == {"lambda_cycle": 0.0, "lambda_identity": 0.5}
    for entry in by_name["no_cycle"].history:
        assert entry["cycle_A"] == entry["cycle_B"] == entry["idt_A"] == entry["idt_B"] == 0.0
        assert entry["generators_total"] == pytest.approx(entry["G_A"] + entry["G_B"])
        assert "cycle_l1_A" not in entry
    for entry in by_name["no_identity"].history:
        assert entry["idt_A"] == entry["idt_B"] == 0.0 and entry["cycle_A"] > 0
    for entry in by_name["paper"].history:
        assert entry["cycle_A"] > 0 and entry["idt_A"] > 0
        assert entry["cycle_l1_A"] == pytest.approx(entry["cycle_A"] / 10)
    assert len(by_name["paper"].history) == 6
    # identical initial generators, so identical held-out errors at iteration 0
    first = [r.checkpoints[0] for r in runs]
    assert all(f["cycle_l1_photo"] == first[0]["cycle_l1_photo"] for f in first)
    for run in runs:
        for c in run.checkpoints:
            assert 0 <= c["cycle_l1_photo"] <= 1 and 0 <= c["cycle_l1_painting"] <= 1 and 0 <= c["identity_l1"] <= 1
        assert run.images[6]["rec_photo"].shape == (2, 3, 32, 32)


def test_lambda_zero_total_generator_loss_is_adversarial_only():
    torch.manual_seed(0)
    batch = {"A": torch.rand(1, 3, 32, 32), "B": torch.rand(1, 3, 32, 32)}
    for lambda_cycle in (0.0, 10.0):
        model = cyclegan.CycleGANModel(cyclegan.CycleGANOptions(size=32, ngf=4, ndf=8, n_blocks=1,
                                                                lambda_cycle=lambda_cycle))
        model.set_input(batch)
        model.forward()
        losses = model.generator_losses()
        total, adversarial = sum(losses.values()).detach(), (losses["G_A"] + losses["G_B"]).detach()
        if lambda_cycle == 0:
            assert float(total) == pytest.approx(float(adversarial))
        else:
            assert float(total) > float(adversarial) + 1.0


def test_csv_and_figures(folders, tmp_path):
    runs = trained_ablations.realtime_style_weights(folders / "photos", folders / "style.png", [1.0, 3.0],
                                                    REALTIME_BASE, folders / "runs", checkpoints=[0, 2])
    path = trained_ablations.write_csv(trained_ablations.checkpoint_rows(runs), tmp_path / "out" / "05_rt.csv")
    with open(path) as file:
        rows = list(csv.DictReader(file))
    assert [(r["run"], r["style_weight"], r["iteration"]) for r in rows] == [
        ("lambda_s = 1", "1.0", "0"), ("lambda_s = 1", "1.0", "2"), ("lambda_s = 3", "3.0", "0"), ("lambda_s = 3", "3.0", "2")]
    assert {"heldout_content", "heldout_style", "heldout_tv", "heldout_total", "seconds"} <= set(rows[0])
    figure = trained_ablations.plot_checkpoints(runs, {"heldout_content": "content", "heldout_style": "style"},
                                                "t", tmp_path / "curves.png")
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["lambda_s = 1", "lambda_s = 3"]
    assert figure.axes[0].get_xlabel() == "training iteration"
    trained_ablations.realtime_progress_figure(runs, path=tmp_path / "grid.png", caption="c")
    trained_ablations.realtime_final_figure(runs, path=tmp_path / "final.png")
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "grid.png").stat().st_size > 0


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="Photos folder .*nowhere"):
        trained_ablations.realtime_style_weights(tmp_path / "nowhere", tmp_path / "s.png", [1.0],
                                                 realtime.RealtimeOptions(), tmp_path, [0])
    (tmp_path / "photos").mkdir()
    with pytest.raises(FileNotFoundError, match="Paintings folder .*missing_paintings"):
        trained_ablations.cyclegan_variants(tmp_path / "photos", tmp_path / "missing_paintings", {"paper": {}},
                                            cyclegan.CycleGANOptions(), tmp_path, [0])
