"""Tests for ``nntools``: exact resume after SIGKILL, safe loading, config checks, course API."""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import checkpoint
import figures
import nntools
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

CODE_DIR = Path(__file__).resolve().parents[1] / "code"

# A dataset with random augmentation (torch.randn + python random) and a two-network model
# with dropout, two optimisers, a LambdaLR linear decay and an "image pool" extra state.
# Shared verbatim by the in-process tests and the subprocess script.
MODEL_SOURCE = '''
import os
import random
import signal
import torch
import torch.nn.functional as F
from torch import nn
import checkpoint
import figures
import nntools
import runtime


class AugmentedData(torch.utils.data.Dataset):
    def __init__(self, n=20):
        g = torch.Generator().manual_seed(123)
        self.x, self.y = torch.randn(n, 6, generator=g), torch.randn(n, 2, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] + 0.1 * torch.randn(6)
        if random.random() < 0.5:
            x = x.flip(0)
        return x, self.y[i]


class TwoNetModel(nntools.TrainingModel):
    def __init__(self, lr_G=1e-2, nan_at_call=0):
        super().__init__()
        self.G = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
        self.D = nn.Linear(2, 1)
        self.networks = {"G": self.G, "D": self.D}
        opt_G = torch.optim.Adam(self.G.parameters(), lr=lr_G, betas=(0.5, 0.999))
        opt_D = torch.optim.SGD(self.D.parameters(), lr=1e-2, momentum=0.9)
        self.optimizers = {"G": opt_G, "D": opt_D}
        self.schedulers = {"G": torch.optim.lr_scheduler.LambdaLR(opt_G, lambda e: 1.0 - e / 10)}
        self.loss_names = ["G", "D"]
        self.pool = []
        self.calls = 0
        self.nan_at_call = nan_at_call

    def set_input(self, batch):
        self.x, self.y = runtime.to_device(batch, self.device)

    def optimize_parameters(self):
        self.calls += 1
        with self.autocast():
            fake = self.G(self.x)
            loss_G = F.mse_loss(fake, self.y) + 0.1 * self.D(fake).mean()
        if self.calls == self.nan_at_call:
            loss_G = loss_G * float("nan")
        self.backward_step(loss_G, self.optimizers["G"], networks=[self.D])
        self.pool = (self.pool + [fake.detach()[0] * torch.rand(())])[-3:]  # global RNG
        d_in = torch.cat([self.y, fake.detach()] + [p[None] for p in self.pool])
        loss_D = self.D(d_in).pow(2).mean()
        self.backward_step(loss_D, self.optimizers["D"])
        return {"G": loss_G, "D": loss_D.detach()}

    def extra_state(self):
        return {"pool": list(self.pool)}

    def load_extra_state(self, state):
        self.pool = list(state["pool"])
'''

SCRIPT = '''
import os
import signal
import sys
import time
sys.path.insert(0, {code_dir!r})
import torch
torch.set_num_threads(1)
{model_source}

if os.environ.get("KILL_AT_ROTATION"):  # die between "latest -> prev" and "tmp -> latest"
    real_replace, rotations = os.replace, [0]
    def replace(src, dst):
        if str(dst).endswith("checkpoint.prev.pth.tar"):
            rotations[0] += 1
            if rotations[0] == int(os.environ["KILL_AT_ROTATION"]):
                real_replace(src, dst)
                os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
    os.replace = replace

if os.environ.get("SLOW_FSYNC"):  # widen every write, so that a kill from outside lands inside one
    real_fsync = os.fsync
    def fsync(fd):
        time.sleep(float(os.environ["SLOW_FSYNC"]))
        real_fsync(fd)
    os.fsync = fsync

torch.manual_seed(0)
model = TwoNetModel()
step = model.optimize_parameters
def step_then_maybe_die():
    time.sleep(float(os.environ.get("SLEEP", "0")))
    losses = step()
    if exp.iteration + 1 == int(os.environ.get("KILL_AT_ITERATION", "0")):
        os.kill(os.getpid(), signal.SIGKILL)  # after the update, before anything is saved
    return losses
model.optimize_parameters = step_then_maybe_die
exp = nntools.Experiment(model, AugmentedData(), output_dir=os.environ["OUT_DIR"], batch_size=4,
                         seed=7, checkpoint_every=int(os.environ.get("CKPT_EVERY", "3")) or None,
                         keep_every_epochs=2, device="cpu", progress=False,
                         num_workers=int(os.environ.get("NUM_WORKERS", "0")))
exp.run(3)
print("DONE", exp.epoch, exp.iteration, flush=True)
'''

exec(compile(MODEL_SOURCE, "model_source", "exec"))  # defines AugmentedData, TwoNetModel here too
AugmentedData: Any
TwoNetModel: Any


# ----------------------------------------------------------------------------- helpers
def run_script(tmp_path: Path, out_dir: Path, **env: str) -> subprocess.CompletedProcess:
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT.format(code_dir=str(CODE_DIR), model_source=MODEL_SOURCE))
    full_env = {**os.environ, "OUT_DIR": str(out_dir), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, str(script)], env=full_env, capture_output=True,
                          text=True, timeout=180)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Recursive bit-for-bit equality of checkpoint contents."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_training_state(resumed: dict, reference: dict) -> None:
    for key in ("networks", "optimizers", "schedulers", "extra_state", "history", "iteration_history",
                "epoch", "iteration", "position", "epoch_sums", "epoch_batches", "rng"):
        assert_same(resumed[key], reference[key], key)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_experiment(out: Path, model: Any = None, **kwargs: Any) -> nntools.Experiment:
    torch.manual_seed(0)
    options = dict(output_dir=out, batch_size=4, seed=7, device="cpu", progress=False,
                   checkpoint_every=None)
    options.update(kwargs)
    return nntools.Experiment(model if model is not None else TwoNetModel(), AugmentedData(), **options)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted 3-epoch run of SCRIPT, in this process with the script's thread count."""
    out = tmp_path_factory.mktemp("reference") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exp = make_experiment(out, checkpoint_every=3, keep_every_epochs=1)
        exp.run(3)
    finally:
        torch.set_num_threads(threads)
    assert (exp.epoch, exp.iteration) == (3, 15)
    return out


# ----------------------------------------------------------------------------- exact resume after SIGKILL
def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def kill_from_outside(tmp_path: Path, out: Path, *, during_write_of: str | None = None,
                      random_delay: float = 0.0, seed: int = 0) -> str:
    """Start the script and SIGKILL it from this process (checkpoint after every iteration).

    Without ``during_write_of``: at a random moment (up to ``random_delay`` s) after the next checkpoint appears.
    With it: while a temporary file whose name starts with it exists, i.e. really inside that write (fsync is slowed
    to 0.4 s in the script so that the write lasts long enough to be seen). Returns what was seen when killed.
    """
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT.format(code_dir=str(CODE_DIR), model_source=MODEL_SOURCE))
    env = {**os.environ, "OUT_DIR": str(out), "OMP_NUM_THREADS": "1", "CKPT_EVERY": "1", "SLEEP": "0.2",
           **({"SLOW_FSYNC": "0.4"} if during_write_of else {})}
    before = load(out / "checkpoint.pth.tar")["iteration"] if (out / "checkpoint.pth.tar").exists() else -1
    launched = time.time() - 0.01  # an orphan .tmp of an earlier kill is older: it does not count
    process = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    seen, deadline = "", time.time() + 120
    try:
        while time.time() < deadline and process.poll() is None:
            if during_write_of:
                tmps = [p.name for p in out.glob(during_write_of + "*.tmp") if _mtime(p) >= launched]
                if tmps:
                    seen = tmps[0]
                    break
            else:
                try:
                    if load(out / "checkpoint.pth.tar")["iteration"] > before:
                        time.sleep(random.Random(seed).uniform(0, random_delay))
                        seen = "random moment"
                        break
                except Exception:  # not written yet, or being replaced right now
                    pass
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL and seen, f"the script ended before the kill ({seen!r})"
    return seen


@pytest.mark.cpu_only("bit-exact resume: CUDA kernels (ReflectionPad2d backward, atomicAdd) are not deterministic")
def test_resume_after_sigkill_is_bit_identical(tmp_path: Path, reference_run: Path) -> None:
    """One output_dir, killed six times in different ways (two of them from outside in the middle of a real
    write: a checkpoint and an epoch copy), then completed by a seventh process.

    20 samples, batch 4: 5 iterations per epoch, 15 in all. After every kill the checkpoint that is left must be
    the expected one, and the final state must equal the reference run's bit for bit (weights, optimisers,
    scheduler, history, extra state, RNG states), epoch copy included; no temporary file may be left behind.
    """
    out = tmp_path / "out"
    latest, prev = out / "checkpoint.pth.tar", out / "checkpoint.prev.pth.tar"

    # 1. SIGKILL from outside at a random moment after the first checkpoint.
    kill_from_outside(tmp_path, out, random_delay=0.4, seed=1)
    assert 1 <= load(latest)["iteration"] < 5

    # 2. Dies in iteration 7 with end-of-epoch checkpoints only: left at the epoch boundary.
    killed = run_script(tmp_path, out, KILL_AT_ITERATION="7", CKPT_EVERY="0")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    state = load(latest)
    assert (state["epoch"], state["iteration"], state["position"]) == (1, 5, 0)
    assert_same_training_state(state, load(reference_run / "checkpoint_epoch0001.pth.tar"))

    # 3. Two data-loader workers (augmentation must not care), checkpoints every 3 iterations;
    #    dies inside the save of iteration 9, between "latest -> prev" and "tmp -> latest":
    #    only checkpoint.prev.pth.tar is left, from mid-epoch (after iteration 6).
    killed = run_script(tmp_path, out, KILL_AT_ROTATION="2", NUM_WORKERS="2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not latest.exists()
    state = load(prev)
    assert (state["epoch"], state["iteration"], state["position"]) == (1, 6, 4)

    # 4. Killed from outside while the checkpoint of iteration 7 is being written (its .tmp exists).
    assert kill_from_outside(tmp_path, out, during_write_of="checkpoint.pth.tar") == "checkpoint.pth.tar.tmp"
    assert not latest.exists() and load(prev)["iteration"] == 6

    # 5. Killed from outside while the epoch-2 copy is being written: the end-of-epoch checkpoint is saved,
    #    the copy is only a .tmp.
    assert kill_from_outside(tmp_path, out, during_write_of="checkpoint_epoch") == "checkpoint_epoch0002.pth.tar.tmp"
    assert load(latest)["iteration"] == 10 and not (out / "checkpoint_epoch0002.pth.tar").exists()

    # 6. Runs to completion: removes the orphan .tmp, recreates the lost epoch copy, and ends as the reference.
    resumed = run_script(tmp_path, out)
    assert resumed.returncode == 0, resumed.stderr
    assert "Removed" in resumed.stderr and "checkpoint_epoch0002.pth.tar.tmp" in resumed.stderr
    assert "Recreated" in resumed.stderr
    assert "DONE 3 15" in resumed.stdout
    assert_same_training_state(load(latest), load(reference_run / "checkpoint.pth.tar"))
    assert_same_training_state(load(out / "checkpoint_epoch0002.pth.tar"),
                               load(reference_run / "checkpoint_epoch0002.pth.tar"))
    for path in out.glob("*.pth.tar"):  # everything written loads with weights_only=True
        load(path)
    assert not list(out.glob("*.tmp")) and not (out / "LOCK").exists()


def test_every_checkpoint_loads_weights_only(reference_run: Path) -> None:
    names = sorted(p.name for p in reference_run.glob("*.pth.tar"))
    assert set(names) == {"checkpoint.pth.tar", "checkpoint.prev.pth.tar", "checkpoint_epoch0001.pth.tar",
                          "checkpoint_epoch0002.pth.tar", "checkpoint_epoch0003.pth.tar"}
    for name in names:
        state = load(reference_run / name)
        assert set(state["networks"]) == {"G", "D"}
        assert isinstance(state["rng"]["torch"], torch.Tensor)
    assert load(reference_run / "checkpoint_epoch0002.pth.tar")["epoch"] == 2
    assert load(reference_run / "checkpoint.prev.pth.tar")["iteration"] == 12  # last mid-epoch save
    config = json.loads((reference_run / "config.json").read_text())
    assert config["optimizer.G.lr"] == 0.01 and config["optimizer.G.betas"] == [0.5, 0.999]
    assert config["network.G.parameters"] == 6 * 16 + 16 + 16 * 2 + 2
    assert (reference_run / "config.txt").read_text().startswith("model: TwoNetModel")


@pytest.mark.cpu_only("bit-exact resume: CUDA kernels (ReflectionPad2d backward, atomicAdd) are not deterministic")
def test_max_iterations_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    full = make_experiment(tmp_path / "full", log_every=2)
    full.run(2)
    assert [h["iteration"] for h in full.iteration_history] == [2, 4, 6, 8, 10]
    part = make_experiment(tmp_path / "part", log_every=2)
    part.run(2, max_iterations=7)
    assert (part.epoch, part.iteration, part.position) == (1, 7, 8)
    assert load(part.checkpoint_path)["iteration"] == 7
    resumed = make_experiment(tmp_path / "part", log_every=2)
    assert (resumed.epoch, resumed.iteration) == (1, 7)
    resumed.run(2)
    assert_same_training_state(load(resumed.checkpoint_path), load(full.checkpoint_path))


# ----------------------------------------------------------------------------- course API
class TinyRegressionNet(nntools.NeuralNetwork):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def criterion(self, y: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(y, d)


def regression_data(n: int, seed: int) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return torch.utils.data.TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3)


def test_classic_course_signature(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = TinyRegressionNet()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    train_set, val_set = regression_data(32, 0), regression_data(16, 1)
    plotted: list[int] = []
    exp = nntools.Experiment(net, train_set, val_set, optimizer, nntools.StatsManager(),
                             tmp_path / "exp", 8, True, device="cpu", progress=False)
    assert exp.net is net and exp.optimizer is optimizer
    exp.run(num_epochs=3, plot=lambda e: plotted.append(e.epoch))
    assert plotted == [1, 2, 3] and exp.epoch == 3 and exp.iteration == 12
    assert [h["epoch"] for h in exp.history] == [1, 2, 3]
    assert exp.history[-1]["train"] < exp.history[0]["train"] / 2  # it really learns
    assert exp.history[0]["train"] == pytest.approx(exp.history[0]["loss"])
    assert exp.evaluate() == pytest.approx(exp.history[-1]["val"])
    assert (tmp_path / "exp" / "config.txt").exists() and (tmp_path / "exp" / "config.json").exists()

    # Constructing it again resumes; run() only trains the missing epochs.
    net2 = TinyRegressionNet()
    optimizer2 = torch.optim.SGD(net2.parameters(), lr=0.1)
    again = nntools.Experiment(net2, train_set, val_set, optimizer2, nntools.StatsManager(),
                               tmp_path / "exp", 8, True, device="cpu", progress=False)
    assert again.epoch == 3 and again.history == exp.history
    assert torch.equal(net2.linear.weight, net.linear.weight)
    again.run(num_epochs=4)
    assert again.epoch == 4 and again.iteration == 16 and len(again.history) == 4


def test_plot_history_writes_png(tmp_path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = [{"epoch": 1, "iteration": 5, "loss": 1.0, "train": 1.0, "val": 1.2, "lr": {"net": 0.1}},
               {"epoch": 2, "iteration": 10, "loss": 0.5, "train": 0.5, "val": {"loss": 0.7, "psnr": 20.0}}]
    ax = figures.plot_history(history)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["loss", "val", "val/loss", "val/psnr"]  # "train" duplicates "loss"; lr skipped
    assert ax.get_title() and ax.get_xlabel() == "epoch" and ax.get_ylabel()
    assert ax.get_legend() is not None
    path = tmp_path / "history.png"
    ax.figure.savefig(path)
    plt.close(ax.figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- safe loading
def two_epoch_dir(out: Path) -> nntools.Experiment:
    exp = make_experiment(out)
    exp.run(2)  # latest = epoch 2, prev = epoch 1
    return exp


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_latest_falls_back_to_previous(damage: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    two_epoch_dir(out)
    latest, prev = out / "checkpoint.pth.tar", out / "checkpoint.prev.pth.tar"
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"certainly not a checkpoint")
    prev_hash = sha(prev)
    with pytest.warns(UserWarning, match="checkpoint.pth.tar.*falling back to .*checkpoint.prev.pth.tar"):
        exp = make_experiment(out)
    assert exp.epoch == 1 and len(exp.history) == 1
    exp.run(2)  # the good .prev must survive; the corrupt file is set aside, not deleted
    assert sha(prev) == prev_hash and load(latest)["epoch"] == 2
    assert len(list(out.glob("checkpoint.corrupt-*.pth.tar"))) == 1


def test_all_checkpoints_corrupt_raises_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    two_epoch_dir(out)
    (out / "checkpoint.pth.tar").write_bytes(b"garbage")
    prev = out / "checkpoint.prev.pth.tar"
    prev.write_bytes(prev.read_bytes()[:100])
    before = {p.name: sha(p) for p in out.iterdir()}
    with pytest.warns(UserWarning), pytest.raises(checkpoint.CheckpointError) as error:
        make_experiment(out)
    message = str(error.value)
    assert "checkpoint.pth.tar" in message and "checkpoint.prev.pth.tar" in message
    assert "nothing was deleted" in message
    assert {p.name: sha(p) for p in out.iterdir()} == before


# ----------------------------------------------------------------------------- config checks
def test_config_mismatch_lists_keys_and_accepting_applies_new_lr(tmp_path: Path) -> None:
    out = tmp_path / "out"
    make_experiment(out, TwoNetModel(lr_G=1e-2), config={"lambda_cycle": 10.0}).run(2)
    with pytest.raises(checkpoint.ConfigMismatchError) as error:
        make_experiment(out, TwoNetModel(lr_G=1e-3), config={"lambda_cycle": 5.0})
    message = str(error.value)
    assert "optimizer.G.lr: stored 0.01, new 0.001" in message
    assert "lambda_cycle: stored 10.0, new 5.0" in message
    assert "accept_config_changes=['lambda_cycle', 'optimizer.G.lr']" in message or \
           "accept_config_changes=['optimizer.G.lr', 'lambda_cycle']" in message
    assert json.loads((out / "config.json").read_text())["optimizer.G.lr"] == 0.01  # untouched

    with pytest.raises(checkpoint.ConfigMismatchError, match="lambda_cycle"):  # only one accepted
        make_experiment(out, TwoNetModel(lr_G=1e-3), config={"lambda_cycle": 5.0},
                        accept_config_changes=["optimizer.G.lr"])
    exp = make_experiment(out, TwoNetModel(lr_G=1e-3), config={"lambda_cycle": 5.0},
                          accept_config_changes=["optimizer.G.lr", "lambda_cycle"])
    group = exp.model.optimizers["G"].param_groups[0]
    # The linear decay (1 - e/10 after 2 epochs) is kept, on top of the new base lr.
    assert group["lr"] == pytest.approx(1e-3 * 0.8) and group["initial_lr"] == 1e-3
    assert exp.model.schedulers["G"].base_lrs == [1e-3]
    assert exp.model.optimizers["G"].state  # Adam moments were restored, not reset
    assert {c["key"] for c in exp.config_changes} == {"optimizer.G.lr", "lambda_cycle"}
    assert json.loads((out / "config.json").read_text())["optimizer.G.lr"] == 1e-3
    exp.run(3)
    assert exp.history[-1]["lr"]["G"] == pytest.approx(1e-3 * 0.8)
    assert exp.model.optimizers["G"].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.7)
    assert {c["key"] for c in load(exp.checkpoint_path)["config_changes"]} == {"optimizer.G.lr", "lambda_cycle"}
    again = make_experiment(out, TwoNetModel(lr_G=1e-3), config={"lambda_cycle": 5.0})  # no error now
    assert again.epoch == 3
    # "all" accepts anything (here a different batch size).
    assert make_experiment(out, TwoNetModel(lr_G=1e-3), config={"lambda_cycle": 5.0}, batch_size=2,
                           accept_config_changes="all").epoch == 3


# ----------------------------------------------------------------------------- state round trip
def test_multi_network_state_scheduler_rng_and_history_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "out"
    exp = make_experiment(out, keep_every_epochs=1)
    exp.run(2)
    assert exp.model.schedulers["G"].last_epoch == 2
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    torch.manual_seed(1234)
    random.seed(1234)
    np.random.seed(1234)
    fresh = TwoNetModel()
    assert not torch.equal(fresh.G[0].weight, exp.model.G[0].weight)
    reloaded = make_experiment(out, fresh)
    assert torch.equal(torch.get_rng_state(), rng[0]) and random.getstate() == rng[1]
    assert np.array_equal(np.random.get_state()[1], rng[2])
    assert reloaded.history == exp.history and len(reloaded.history) == 2
    assert set(reloaded.history[0]) >= {"epoch", "iteration", "G", "D", "lr"}
    assert reloaded.model.schedulers["G"].state_dict()["last_epoch"] == 2
    assert fresh.optimizers["G"].param_groups[0]["lr"] == pytest.approx(1e-2 * 0.8)
    assert_same(reloaded.model.extra_state(), exp.model.extra_state(), "extra_state")
    assert len(fresh.pool) == 3
    for name in ("G", "D"):
        assert_same(fresh.networks[name].state_dict(), exp.model.networks[name].state_dict(), name)
        assert_same(fresh.optimizers[name].state_dict(), exp.model.optimizers[name].state_dict(), name)
    assert [load(out / f"checkpoint_epoch{e:04d}.pth.tar")["epoch"] for e in (1, 2)] == [1, 2]


# ----------------------------------------------------------------------------- failures
def test_nan_loss_raises_and_keeps_last_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "out"
    exp = make_experiment(out, TwoNetModel(nan_at_call=7), checkpoint_every=3)
    with pytest.raises(nntools.NonFiniteLossError, match=r"'G' is nan at epoch 2, iteration 7"):
        exp.run(3)
    latest_hash = sha(exp.checkpoint_path)
    state = load(exp.checkpoint_path)
    assert state["iteration"] == 6
    assert all(torch.isfinite(t).all() for net in state["networks"].values() for t in net.values())
    with pytest.raises(nntools.NonFiniteLossError):
        exp.save()  # the poisoned state is never written
    assert sha(exp.checkpoint_path) == latest_hash
    resumed = make_experiment(out, TwoNetModel())
    assert (resumed.epoch, resumed.iteration) == (1, 6)


def test_amp_on_cpu_and_missing_tensorboard_warn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.warns(UserWarning, match=r"amp=True \(float16\) needs CUDA; on cpu"):
        exp = make_experiment(tmp_path / "out", amp=True, tensorboard=True)
    assert exp.amp is False and not exp.model.scaler.is_enabled()
    with pytest.warns(UserWarning, match="tensorboard is not installed"):
        exp.run(1)
    assert exp.epoch == 1


@pytest.mark.cpu_only("bit-exact resume: CUDA kernels (ReflectionPad2d backward, atomicAdd) are not deterministic")
def test_bf16_autocast_on_cpu_trains_like_fp32_and_resumes_exactly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="amp must be False, True, 'fp16' or 'bf16', got 'int8'"):
        make_experiment(tmp_path / "bad", amp="int8")
    fp32 = make_experiment(tmp_path / "fp32")
    fp32.run(3)
    full = make_experiment(tmp_path / "full", amp="bf16")
    assert full.amp and full.model.amp_dtype is torch.bfloat16 and not full.model.scaler.is_enabled()
    dtypes: list[torch.dtype] = []
    hook = full.model.G[0].register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    full.run(3)
    hook.remove()
    assert dtypes and set(dtypes) == {torch.bfloat16}  # the Linear ran in bf16 under autocast
    for key in ("G", "D"):  # same data, seeds and steps: bf16 rounding moved the losses by 0.2 % (measured)
        assert full.history[-1][key] < full.history[0][key]
        assert full.history[-1][key] == pytest.approx(fp32.history[-1][key], rel=0.02), key
    assert all(p.dtype == torch.float32 for p in full.model.G.parameters())  # master weights stay fp32
    part = make_experiment(tmp_path / "part", amp="bf16")
    part.run(3, max_iterations=7)
    resumed = make_experiment(tmp_path / "part", amp="bf16")
    resumed.run(3)
    assert_same_training_state(load(resumed.checkpoint_path), load(full.checkpoint_path))
