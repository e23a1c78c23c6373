"""DDP for real: two processes (gloo on CPU) train a DistributedDataParallel model through ``nntools.Experiment``.

The launcher (two plain child processes, as torchrun starts them) is SIGKILLed mid-run; its workers must stop by
themselves (they must not write on), and a new
two-process run resumes and ends bit-identical to an uninterrupted two-process run. Only rank 0 writes into
``output_dir`` (an audit hook in rank 1 records every file it opens for writing there).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

CODE_DIR = Path(__file__).resolve().parents[1] / "code"

LAUNCHER = r'''
import json
import os
import socket
import sys
import time
sys.path.insert(0, {code_dir!r})
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
import nntools
import runtime

OUT, PORT = os.environ["OUT_DIR"], os.environ["PORT"]


class Regression(nntools.TrainingModel):
    """The README's DDP recipe: plain modules in ``networks`` (checkpoints), the DDP wrapper used for the steps."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.networks = {{"net": self.net}}
        self.optimizers = {{"net": torch.optim.Adam(self.net.parameters(), lr=1e-2)}}
        self.loss_names = ["loss"]
        self.ddp = self.net

    def set_input(self, batch):
        self.x, self.d = runtime.to_device(batch, self.device)

    def optimize_parameters(self):
        time.sleep(float(os.environ.get("SLEEP", "0")))
        loss = nn.functional.mse_loss(self.ddp(self.x), self.d)
        self.backward_step(loss, self.optimizers["net"])
        return {{"loss": loss.detach()}}


def worker(rank):
    torch.set_num_threads(1)
    if rank == 1:  # record every file rank 1 opens for writing inside output_dir
        written = []
        def audit(event, args):
            if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
                mode, flags = args[1] or "r", args[2] or 0
                writing = any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
                if writing and os.path.abspath(os.fsdecode(args[0])).startswith(os.path.abspath(OUT) + os.sep):
                    written.append(os.fsdecode(args[0]))
                    with open(OUT + ".rank1_writes", "a") as f:
                        f.write(os.fsdecode(args[0]) + "\n")
        sys.addaudithook(audit)
    with open(OUT + f".pid{{rank}}", "w") as f:
        f.write(str(os.getpid()))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{{PORT}}", rank=rank, world_size=2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True).sin())
    torch.manual_seed(0)
    model = Regression()
    exp = nntools.Experiment(model, data, output_dir=OUT, batch_size=4, seed=3, device="cpu",
                             progress=False, checkpoint_every=1, keep_every_epochs=1)
    model.ddp = DDP(model.net, device_ids=[exp.device.index] if exp.device.type == "cuda" else None)
    exp.run(int(os.environ.get("EPOCHS", "2")))
    dist.destroy_process_group()
    print("DONE", rank, exp.epoch, exp.iteration, flush=True)


if __name__ == "__main__":
    if "RANK" in os.environ:
        worker(int(os.environ["RANK"]))
    else:  # the launcher, like torchrun: two plain child processes (no parent-death signal set up for them)
        import subprocess
        children = [subprocess.Popen([sys.executable, __file__], env={{**os.environ, "RANK": str(r)}}) for r in (0, 1)]
        sys.exit(max(child.wait() for child in children))
'''


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp_path: Path, out: Path, **env: str) -> subprocess.Popen:
    script = tmp_path / "ddp_launcher.py"
    script.write_text(LAUNCHER.format(code_dir=str(CODE_DIR)))
    full_env = {**os.environ, "OUT_DIR": str(out), "PORT": str(free_port()), "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen([sys.executable, str(script)], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not yet reaped by its dead parent's reaper) counts as stopped
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not torch.distributed.is_available() or sys.platform != "linux", reason="needs gloo on Linux")
def test_two_process_ddp_resumes_bit_identical_after_the_launcher_is_killed(tmp_path: Path) -> None:
    reference, out = tmp_path / "reference", tmp_path / "out"
    full = launch(tmp_path, reference)
    stdout, stderr = full.communicate(timeout=120)
    assert full.returncode == 0, stderr
    assert "DONE 0 2 8" in stdout and "DONE 1 2 8" in stdout  # 32 samples / (2 ranks x 4) = 4 per epoch

    # Kill only the launcher once a few checkpoints exist: the workers must stop by themselves.
    killed = launch(tmp_path, out, SLEEP="0.05")
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if load(out / "checkpoint.pth.tar")["iteration"] >= 3:
                break
        except Exception:  # not written yet, or being replaced
            pass
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    workers = [int(Path(f"{out}.pid{rank}").read_text()) for rank in (0, 1)]
    deadline = time.time() + 10
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "workers kept running after their launcher was killed"
    stopped_at = load(out / "checkpoint.pth.tar")["iteration"]
    time.sleep(1.0)
    assert load(out / "checkpoint.pth.tar")["iteration"] == stopped_at  # nobody writes on
    assert 3 <= stopped_at < 8
    # Rank 0 either died holding the lock (SIGKILL by its watchdog: a stale LOCK, taken over below) or first saw rank 1
    # vanish, raised in the collective and released the lock on its way out: never a live holder.
    stale = (out / "LOCK").exists()
    if stale:
        assert not alive(int(json.loads((out / "LOCK").read_text())["pid"]))

    resumed = launch(tmp_path, out)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert ("stale lock" in stderr) == stale and "DONE 0 2 8" in stdout
    final, expected = load(out / "checkpoint.pth.tar"), load(reference / "checkpoint.pth.tar")
    for key in ("networks", "optimizers", "history", "epoch", "iteration", "position"):
        assert repr(final[key]) == repr(expected[key]), key
    for name, tensor in expected["networks"]["net"].items():
        assert torch.equal(final["networks"]["net"][name], tensor), name
    for epoch in (1, 2):
        copy, ref = load(out / f"checkpoint_epoch{epoch:04d}.pth.tar"), load(reference / f"checkpoint_epoch{epoch:04d}.pth.tar")
        assert all(torch.equal(copy["networks"]["net"][k], v) for k, v in ref["networks"]["net"].items())
    assert not Path(f"{reference}.rank1_writes").exists() and not Path(f"{out}.rank1_writes").exists()
    assert not (out / "LOCK").exists() and not list(out.glob("*.tmp"))
