"""nntools reliability: non-finite states are never saved, the output_dir lock, checkpoints of the older format."""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import nntools
import pytest
import runtime
import torch
from test_nntools import TwoNetModel, load, make_experiment  # noqa: F401 - shared tiny model and helpers

CODE_DIR = Path(__file__).resolve().parents[1] / "code"


class NanGradientModel(TwoNetModel):
    """The loss stays finite, but at step ``nan_grad_at`` the gradient of G's first weight is NaN."""

    def __init__(self, nan_grad_at: int) -> None:
        super().__init__()
        self.nan_grad_at = nan_grad_at

    def optimize_parameters(self):
        hook = None
        if self.calls + 1 == self.nan_grad_at:
            hook = self.G[0].weight.register_hook(lambda grad: grad * float("nan"))
        try:
            return super().optimize_parameters()
        finally:
            if hook is not None:
                hook.remove()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_nan_gradients_under_a_finite_loss_are_never_saved(tmp_path: Path) -> None:
    out = tmp_path / "out"
    exp = make_experiment(out, NanGradientModel(nan_grad_at=6), checkpoint_every=3)
    with pytest.raises(nntools.NonFiniteLossError, match=r"network 'G' tensor '0.weight' is not finite"):
        exp.run(3)  # step 6 returns finite losses; its save finds the NaN weights
    assert exp.iteration == 6 and all(torch.isfinite(torch.tensor(v)) for v in exp.iteration_history[-1:])
    state = load(out / "checkpoint.pth.tar")
    assert state["iteration"] == 5  # the end of epoch 1, the last save before the poisoned step
    assert all(torch.isfinite(t).all() for net in state["networks"].values() for t in net.values())
    resumed = make_experiment(out, NanGradientModel(nan_grad_at=0))  # the saved state resumes
    assert resumed.iteration == 5


def test_non_finite_optimizer_state_is_named_and_not_saved(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "out")
    exp.run(1)
    before = sha(exp.checkpoint_path)
    param = exp.model.G[3].weight
    exp.model.optimizers["G"].state[param]["exp_avg_sq"][0, 0] = float("inf")
    with pytest.raises(nntools.NonFiniteLossError, match=r"optimizer 'G' state 'exp_avg_sq' of G.3.weight"):
        exp.save()
    assert sha(exp.checkpoint_path) == before


HOLDER = r'''
import sys
import time
sys.path.insert(0, {code!r})
import torch
import checkpoint
import nntools
from torch import nn

class M(nntools.TrainingModel):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 1)
        self.networks = {{"net": self.net}}
        self.optimizers = {{"net": torch.optim.SGD(self.net.parameters(), lr=0.1)}}

exp = nntools.Experiment(M(), torch.utils.data.TensorDataset(torch.zeros(4, 2)), output_dir={out!r},
                         batch_size=2, device="cpu", progress=False)
print("LOCKED", flush=True)
time.sleep(120)
'''


def test_a_second_process_is_refused_and_a_stale_lock_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(code=str(CODE_DIR), out=str(out))],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        with pytest.raises(runtime.OutputDirLockedError) as error:
            make_experiment(out)
        message = str(error.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message and str(out) in message
        assert not list(out.glob("checkpoint*"))  # the refused process wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / "LOCK").exists()  # a SIGKILLed holder cannot clean up: its lock is stale now
    with pytest.warns(UserWarning, match="Taking over the stale lock"):
        exp = make_experiment(out, accept_config_changes="all")  # the holder wrote its own config
    exp.run(1)
    assert f'"pid": {os.getpid()}' in (out / "LOCK").read_text()
    del exp
    import gc

    gc.collect()
    assert not (out / "LOCK").exists()  # released when the Experiment is gone


def test_checkpoints_of_the_older_format_still_resume(tmp_path: Path) -> None:
    """Checkpoints written before epoch copies were recorded have no "epoch_copies" key: they resume unchanged,
    and their existing epoch copies are left alone."""
    out = tmp_path / "out"
    make_experiment(out, keep_every_epochs=1).run(2)
    import gc

    gc.collect()
    for name in ("checkpoint.pth.tar", "checkpoint.prev.pth.tar"):
        state = load(out / name)
        del state["epoch_copies"]
        torch.save(state, out / name)
    copies = {p.name: sha(p) for p in out.glob("checkpoint_epoch*")}
    resumed = make_experiment(out, keep_every_epochs=1)
    assert (resumed.epoch, resumed.iteration) == (2, 10)
    resumed.run(3)
    assert {p.name: sha(p) for p in out.glob("checkpoint_epoch*") if p.name in copies} == copies
    assert load(out / "checkpoint_epoch0003.pth.tar")["epoch"] == 3
