"""Crash-resume soak of ``nntools.Experiment``: SIGKILL a tiny training run again and again, at random moments and
from outside in the middle of real writes (the checkpoint, the epoch copy), resume every time, and check that the
end state is bit-identical to an uninterrupted run, that every checkpoint left loads, that no epoch copy is lost and
no ``.tmp`` file is left.

    python bench/soak_kill.py --kills 24            # writes bench/results/soak_kill.json
    python bench/soak_kill.py --kills 3 --epochs 2  # smoke run

Kinds of kill, in turn: a random moment; while ``checkpoint.pth.tar.tmp`` is being written; while a
``checkpoint_epochNNNN.pth.tar.tmp`` copy is being written (fsync is slowed to ``--slow-fsync`` seconds in the
child so a write lasts long enough to be hit from outside).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import cli  # noqa: E402
from benchlib import write_json  # noqa: E402

CHILD = r'''
import os
import random
import sys
import time
sys.path.insert(0, {code!r})
import torch
torch.set_num_threads(1)
from torch import nn
import nntools

if float(os.environ.get("SLOW_FSYNC", "0")):
    real_fsync = os.fsync
    def fsync(fd):
        time.sleep(float(os.environ["SLOW_FSYNC"]))
        real_fsync(fd)
    os.fsync = fsync


class Data(torch.utils.data.Dataset):
    def __init__(self, n=24):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 8, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] + 0.1 * torch.randn(8)  # augmentation from the per-sample seed
        return x, x.flip(0).tanh()


class Net(nntools.NeuralNetwork):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 8))

    def forward(self, x):
        time.sleep(float(os.environ.get("SLEEP", "0")))
        return self.body(x)

    def criterion(self, y, d):
        return nn.functional.mse_loss(y, d)


torch.manual_seed(0)
net = Net()
optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
exp = nntools.Experiment(net, Data(), optimizer=optimizer, output_dir=os.environ["OUT"], batch_size=4, seed=5,
                         device="cpu", progress=False, checkpoint_every=1, keep_every_epochs=1)
exp.run(int(os.environ["EPOCHS"]))
print("DONE", exp.epoch, exp.iteration, flush=True)
'''


def start(script: Path, out: Path, epochs: int, **env: str) -> subprocess.Popen:
    full = {**os.environ, "OUT": str(out), "EPOCHS": str(epochs), "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen([sys.executable, str(script)], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def same_state(a: dict, b: dict) -> bool:
    """Every tensor (weights, optimiser state, RNG states) equal bit for bit, and the same epoch, iteration, history."""
    flat_a, flat_b = _tensors(a), _tensors(b)
    return flat_a.keys() == flat_b.keys() and all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a) and \
        (a["epoch"], a["iteration"], a["history"]) == (b["epoch"], b["iteration"], b["history"])


def _tensors(state: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in ("config", "config_changes", "epoch_copies"):
            continue
        name = f"{prefix}.{key}"
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, dict):
            out.update(_tensors(value, name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=12, help="6 iterations per epoch")
    parser.add_argument("--slow-fsync", type=float, default=0.15)
    parser.add_argument("--sleep", type=float, default=0.03, help="seconds per forward pass (paces the run)")
    parser.add_argument("--seed", type=int, default=0)
    cli.add_run_flags(parser, "JSON file", str(ROOT / "bench" / "results" / "soak_kill.json"), flags=("output",))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    began = time.time()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "child.py"
        script.write_text(CHILD.format(code=str(ROOT / "code")))
        reference, out = tmp / "reference", tmp / "soak"
        done = start(script, reference, args.epochs)
        assert done.wait() == 0, done.stderr.read()
        kinds = ["random", "checkpoint.pth.tar", "checkpoint_epoch"]
        counts = {k: 0 for k in kinds}
        kills, finished_early, recreated, removed_tmp = 0, 0, 0, 0
        while kills < args.kills:
            kind = kinds[kills % len(kinds)]
            launched = time.time() - 0.01
            process = start(script, out, args.epochs, SLEEP=str(args.sleep),
                            SLOW_FSYNC=str(args.slow_fsync if kind != "random" else 0))
            deadline = launched + 60 + rng.uniform(0.5, 3.0) if kind == "random" else launched + 60
            kill_at = launched + rng.uniform(1.0, 4.0)  # after the child's start-up (imports take ~1-3 s)
            while process.poll() is None and time.time() < deadline:
                if kind == "random" and time.time() >= kill_at:
                    break
                if kind != "random" and [p for p in out.glob(kind + "*.tmp") if mtime(p) >= launched]:
                    break
                time.sleep(0.005)
            if process.poll() is not None:  # finished before the kill: the run is complete
                finished_early += 1
                break
            process.send_signal(signal.SIGKILL)
            _, stderr = process.communicate()
            recreated += stderr.count("UserWarning: Recreated")
            removed_tmp += stderr.count("UserWarning: Removed")
            kills += 1
            counts[kind] += 1
            print(f"kill {kills:2d} ({kind}): latest at iteration "
                  f"{load(out / 'checkpoint.pth.tar')['iteration'] if (out / 'checkpoint.pth.tar').exists() else '-'}",
                  flush=True)
        final = start(script, out, args.epochs)
        stdout, stderr = final.communicate()
        corrupt = []
        for path in sorted(out.glob("*.pth.tar")):
            try:
                load(path)
            except Exception as error:  # noqa: BLE001
                corrupt.append(f"{path.name}: {error}")
        expected_copies = {f"checkpoint_epoch{e:04d}.pth.tar" for e in range(1, args.epochs + 1)}
        present = {p.name for p in out.glob("checkpoint_epoch*.pth.tar")}
        copies_identical = all(same_state(load(out / n), load(reference / n)) for n in expected_copies & present)
        summary = {
            "kills": kills, "kills_by_kind": counts, "finished_before_kill": finished_early,
            "final_exit_status": final.returncode,
            "final_bit_identical": final.returncode == 0 and same_state(load(out / "checkpoint.pth.tar"),
                                                                        load(reference / "checkpoint.pth.tar")),
            "corrupt_checkpoints": corrupt, "missing_epoch_copies": sorted(expected_copies - present),
            "epoch_copies_identical": copies_identical, "tmp_files_left": sorted(p.name for p in out.glob("*.tmp")),
            "epoch_copies_recreated_on_resume": recreated + stderr.count("UserWarning: Recreated"),
            "orphan_tmp_removed_on_resume": removed_tmp + stderr.count("UserWarning: Removed"),
            "epochs": args.epochs, "iterations": load(reference / "checkpoint.pth.tar")["iteration"],
            "seconds": round(time.time() - began, 1), "torch": torch.__version__, "threads_per_process": 1,
        }
    print(json.dumps(summary, indent=2))
    write_json(summary, args.output)
    ok = (summary["final_bit_identical"] and not corrupt and not summary["missing_epoch_copies"]
          and copies_identical and not summary["tmp_files_left"])
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
