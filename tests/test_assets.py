"""Shipped weights are verified by SHA-256; the fp16 store/load round trip; tampering is refused."""
from __future__ import annotations

import json

import pytest
import torch
import weights


def test_every_shipped_file_matches_its_manifest_entry():
    manifest = weights.read_manifest()
    assert manifest, "assets/MANIFEST.json lists the shipped weights"
    for name, entry in manifest.items():
        path = weights.ASSETS_DIR / name
        assert weights.sha256_file(path) == entry["sha256"], name
        assert path.stat().st_size == entry["bytes"] and entry["recipe"], name


def test_fp16_round_trip_and_tamper_detection(tmp_path):
    state = {"weight": torch.randn(4, 3), "steps": torch.tensor(7)}
    path = weights.save_fp16_weights(state, "tiny.pth", {"note": "test"}, assets_dir=tmp_path)
    raw = torch.load(path, weights_only=True)
    assert raw["weight"].dtype == torch.float16 and raw["steps"].dtype == torch.int64
    loaded = weights.load_verified_weights("tiny.pth", tmp_path)
    torch.testing.assert_close(loaded["weight"], state["weight"].half().float())
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["tiny.pth"]["recipe"] == {"note": "test"}
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(weights.WeightsError, match="SHA-256 mismatch"):
        weights.load_verified_weights("tiny.pth", tmp_path)
    with pytest.raises(weights.WeightsError, match="not listed"):
        weights.load_verified_weights("other.pth", tmp_path)


def test_architecture_mismatch_is_explained():
    module = torch.nn.Linear(3, 2)
    with pytest.raises(Exception, match=r"weight: expected \(2, 3\)"):
        weights.load_state_into(module, {"weight": torch.zeros(4, 3), "bias": torch.zeros(2)}, "file.pth")
