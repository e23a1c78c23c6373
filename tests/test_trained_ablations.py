"""Short-run ablation helpers: real (tiny) trainings with the configured weights, on synthetic image folders."""
from __future__ import annotations

import pytest
import torch

import cyclegan
import realtime
import trained_ablations
from imaging import save_image


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def folders(tmp_path):
    generator = torch.Generator().manual_seed(0)
    for name, count in (("photos", 6), ("paintings", 6)):
        for i in range(count):
            save_image(torch.rand(1, 3, 40, 48, generator=generator), tmp_path / name / f"{i}.png")
    save_image(torch.rand(1, 3, 32, 32, generator=generator), tmp_path / "style.png")
    return tmp_path


def test_realtime_style_weight_runs_are_distinct_and_resumable(folders):
    base = realtime.RealtimeOptions(image_size=32, batch_size=2, iterations=3, width=0.125, holdout=2,
                                    sample_every=3, style_size=32)
    rows = trained_ablations.realtime_style_weights(folders / "photos", folders / "style.png", [0.5, 4.0], base, folders / "runs")
    assert [r["style_weight"] for r in rows] == [0.5, 4.0] and all(r["iterations"] == 3 for r in rows)
    assert not torch.equal(rows[0]["outputs"][0], rows[1]["outputs"][0])  # a different lambda_s trains differently
    again = trained_ablations.realtime_style_weights(folders / "photos", folders / "style.png", [0.5], base, folders / "runs")
    torch.testing.assert_close(again[0]["outputs"][0], rows[0]["outputs"][0])  # reused from the checkpoint
    images, labels = trained_ablations.sample_progression(rows[0]["samples_dir"])
    assert labels == ["iteration 3"] and images[0].shape[1] == 3


def test_cyclegan_lambda_zero_has_no_cycle_term(folders):
    base = cyclegan.CycleGANOptions(size=32, ngf=4, ndf=8, n_blocks=1, n_epochs=1, n_epochs_decay=0)
    variants = {"no_cycle": {"lambda_cycle": 0.0}, "paper": {}}
    rows = trained_ablations.cyclegan_variants(folders / "photos", folders / "paintings", variants, base,
                                               folders / "runs", iterations=2, limit_images=None, held_out=1,
                                               hold_out=(2, 2))
    by_name = {r["variant"]: r for r in rows}
    assert all(h["cycle_A"] == 0.0 for h in by_name["no_cycle"]["history"] if "cycle_A" in h)
    assert any(h.get("cycle_A", 0) > 0 for h in by_name["paper"]["history"])
    assert all(0 <= r["cycle_error"] <= 1 for r in rows) and by_name["paper"]["iterations"] == 2


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="Photos folder .*nowhere"):
        trained_ablations.realtime_style_weights(tmp_path / "nowhere", tmp_path / "s.png", [1.0],
                                                 realtime.RealtimeOptions(), tmp_path)
