"""Checkpoints written by the layout before the redesign (issue #18) resume with today's code.

``tests/fixtures/old_layout`` holds two run folders made at commit 37afe80 (``make_fixture.py`` there says how):
a tiny CycleGAN stopped after 7 of 12 iterations and a tiny real-time run stopped after 12 of 24. Each is copied,
resumed to the end with today's modules, and must end with exactly the weights of a run trained without a stop.

The fixtures' first iterations ran with PyTorch's AVX2 CPU kernels. On a CPU where PyTorch picks others (AVX512),
fp32 convolutions round differently and the runs drift apart, so there each test reruns itself in a subprocess with the
AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``), which every x86-64 CPU this code runs on has.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cyclegan
import pytest
import realtime
import torch
from test_cyclegan import TINY, make_domains
from test_realtime import smooth_image, tiny_options

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "old_layout"
# The fixture was made in another temporary folder: a moved run folder resumes once its data paths are accepted.
MOVED_DATA = "all"
FIXTURE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def under_fixture_kernels(test):
    """Run ``test`` here if PyTorch uses the fixtures' AVX2 kernels, else in a subprocess forced to them."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        if torch.backends.cpu.get_cpu_capability() == "AVX2":
            return test(*args, **kwargs)
        completed = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                    f"{__file__}::{test.__name__}"], capture_output=True, text=True,
                                   env={**os.environ, **FIXTURE_KERNELS}, cwd=Path(__file__).parents[1])
        assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    return wrapper


def realtime_inputs(root: Path) -> tuple[Path, dict[str, Path]]:
    """The photo folder and the style image the real-time fixture was trained on (made the same way here)."""
    folder = root / "rt_photos"
    folder.mkdir()
    for i in range(10):
        smooth_image(i).save(folder / f"photo_{i:02d}.png")
    styles = {"blobs": root / "blobs.png"}
    smooth_image(99, 64).save(styles["blobs"])
    return folder, styles


def assert_same_weights(a: dict[str, torch.nn.Module], b: dict[str, torch.nn.Module]) -> None:
    for name, network in a.items():
        for key, value in network.state_dict().items():
            assert torch.equal(value, b[name].state_dict()[key]), f"{name}.{key}"


@pytest.mark.cpu_only("bit-exact resume needs the deterministic CPU kernels the fixture was made with")
@under_fixture_kernels
def test_old_cyclegan_checkpoint_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    photos, paintings = make_domains(tmp_path)
    options = cyclegan.CycleGANOptions(**TINY, n_epochs=2, n_epochs_decay=2)
    kwargs = dict(hold_out_photos=1, hold_out_paintings=1, checkpoint_every=2, progress=False, device="cpu")
    shutil.copytree(FIXTURES / "cyclegan_run", tmp_path / "old")
    resumed = cyclegan.train_cyclegan(photos, paintings, tmp_path / "old", options,
                                      accept_config_changes=MOVED_DATA, **kwargs)
    straight = cyclegan.train_cyclegan(photos, paintings, tmp_path / "straight", options, **kwargs)
    assert resumed.iteration == straight.iteration == 12
    assert [h["cycle_A"] for h in resumed.history] == [h["cycle_A"] for h in straight.history]
    assert_same_weights(straight.model.networks, resumed.model.networks)


@pytest.mark.cpu_only("bit-exact resume needs the deterministic CPU kernels the fixture was made with")
@under_fixture_kernels
def test_old_realtime_checkpoint_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    folder, styles = realtime_inputs(tmp_path)
    shutil.copytree(FIXTURES / "realtime_run", tmp_path / "old")
    resumed = realtime.train_realtime(folder, styles, tmp_path / "old", tiny_options(iterations=24),
                                      accept_config_changes=MOVED_DATA, progress=False)
    straight = realtime.train_realtime(folder, styles, tmp_path / "straight", tiny_options(iterations=24),
                                       progress=False)
    assert resumed.iteration == straight.iteration == 24
    assert_same_weights({"transformer": straight.model.transformer}, {"transformer": resumed.model.transformer})
