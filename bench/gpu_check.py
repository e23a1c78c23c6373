"""GPU check (issue 14, item 5): everything that needs a GPU, in one run of at most 8 minutes, written to one JSON.

    bash bench/gpu_check.sh                        # on a CUDA machine: bench/results/gpu_check_cuda.json
    bash bench/gpu_check.sh --device cpu --quick   # the same steps at tiny sizes on a CPU (gloo instead of nccl)

Steps, each in its own subprocess with a time limit (a failing or hanging step is recorded and the others still run):

* ``demo_notebook``: ``demo.ipynb`` executed headless (``.ci/run_notebook.py``; outputs to a temporary folder), wall time;
* ``train_<network>_<precision>``: ``--iterations`` (default 20) training iterations of the transform network
  (``realtime.train_realtime``), CycleGAN (``cyclegan.train_cyclegan``) and the AdaIN decoder (``adain.train_adain``)
  on ``assets/sample`` with fp16 and with bf16 autocast; passes when every logged loss is finite;
* ``bench_gatys``: ``bench/bench_gatys.py``'s worker (one configuration per subprocess: fp32, bf16, fp16 with
  channels_last) at a small size: seconds per L-BFGS evaluation, peak memory, loss;
* ``ddp_smoke``: ``torchrun --standalone --nproc_per_node=1`` training a small model through ``nntools.Experiment``
  wrapped in DistributedDataParallel (README, "More than one GPU"), nccl on CUDA, gloo on the CPU.

What cannot run on the device is skipped with the reason (fp16 autocast off CUDA; bf16 on a GPU before Ampere; the
notebook with ``--quick``, since it takes minutes on a CPU). Exit status 0 when every step that ran passed, 1 if not.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli  # noqa: E402
from benchlib import load_average, utc_timestamp, write_json  # noqa: E402

SAMPLE = ROOT / "assets" / "sample"
BUDGET_S = {"cuda": 480, "cpu": 1200}  # the whole check: 8 minutes on a GPU; a loaded 2-core CPU needs longer
# Step sizes: (full on a GPU, --quick); the training sizes are the papers' crops on a GPU.
SIZES = {"realtime": ({"image_size": 256, "batch_size": 4, "width": 1.0, "style_size": 256},
                      {"image_size": 32, "batch_size": 1, "width": 0.25, "style_size": 32}),
         "cyclegan": ({"size": 256, "ngf": 64, "ndf": 64, "n_blocks": 9}, {"size": 32, "ngf": 8, "ndf": 8, "n_blocks": 1}),
         "adain": ({"image_size": 256, "load_size": 288, "batch_size": 8}, {"image_size": 32, "load_size": 40, "batch_size": 1}),
         "gatys": ({"size": 512, "iterations": 20}, {"size": 64, "iterations": 2})}


def finite_losses(rows: list[dict]) -> tuple[dict, bool]:
    """The last logged losses (numbers only) and whether every logged loss is finite."""
    numbers = [{k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k not in ("iteration", "epoch")}
               for row in rows]
    numbers = [row for row in numbers if row]
    ok = bool(numbers) and all(math.isfinite(v) for row in numbers for v in row.values())
    return (numbers[-1] if numbers else {}), ok


# ------------------------------------------------------------------------------------------- steps (in a subprocess)
def train_step(network: str, precision: str, device: str, iterations: int, quick: bool) -> dict:
    import runtime
    import torch

    sizes = SIZES[network][1 if quick else 0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        if network == "realtime":
            import realtime

            options = realtime.RealtimeOptions(iterations=iterations, sample_every=iterations, holdout=2, amp=precision,
                                               checkpoint_minutes=None, load_size=round(sizes["image_size"] * 1.25),
                                               **sizes)
            experiment = realtime.train_realtime(SAMPLE / "photos", {"starry_night": ROOT / "assets" / "starry_night.jpg"},
                                                 folder, options, device=device, progress=False)
        elif network == "cyclegan":
            import cyclegan

            options = cyclegan.CycleGANOptions(load_size=round(sizes["size"] * 286 / 256), **sizes)
            experiment = cyclegan.train_cyclegan(SAMPLE / "photos", SAMPLE / "paintings", folder, options,
                                                 max_iterations=iterations, hold_out_photos=2, hold_out_paintings=2,
                                                 checkpoint_minutes=None, device=device, amp=precision,
                                                 assets_dir=Path(folder) / "assets", progress=False, log_every=1)
        else:
            import adain

            options = adain.AdaINTrainOptions(iterations=iterations, amp=precision, **sizes)
            experiment = adain.train_adain(SAMPLE / "photos", SAMPLE / "paintings", folder, options, device=device,
                                           progress=False, checkpoint_every=10_000)
        runtime.synchronize(device)
        seconds = time.perf_counter() - started
        rows = list(experiment.iteration_history or experiment.history)
        if network == "realtime":  # it logs every 10 iterations: add the held-out losses of the trained network
            rows.append({f"heldout_{k}": float(v) for k, v in experiment.evaluate().items()})
        last, ok = finite_losses(rows)
        return {"ok": ok and experiment.iteration == iterations, "iterations": experiment.iteration,
                "amp_dtype": str(experiment.amp_dtype), "seconds": round(seconds, 2), "last_losses": last,
                "sizes": sizes, "device": str(experiment.device),
                "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None,
                "bf16_native": runtime.bf16_native(experiment.device)}


def ddp_worker(device: str, iterations: int) -> None:
    """Rank code under torchrun: the README's DDP recipe on a small regression; rank 0 prints the JSON result."""
    import nntools
    import runtime
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    class Regression(nntools.TrainingModel):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
            self.networks = {"net": self.net}
            self.optimizers = {"net": torch.optim.Adam(self.net.parameters(), lr=1e-2)}
            self.loss_names = ["loss"]
            self.ddp = self.net

        def set_input(self, batch):
            self.x, self.d = runtime.to_device(batch, self.device)

        def optimize_parameters(self):
            loss = nn.functional.mse_loss(self.ddp(self.x), self.d)
            self.backward_step(loss, self.optimizers["net"])
            return {"loss": loss.detach()}

    backend = "nccl" if device == "cuda" else "gloo"
    dist.init_process_group(backend)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64 * iterations, 4, generator=generator)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True).sin())
    model = Regression()
    with tempfile.TemporaryDirectory() as folder:
        experiment = nntools.Experiment(model, data, output_dir=folder, batch_size=64, seed=0, progress=False,
                                        log_every=1, device=None if device == "cuda" else "cpu")
        model.ddp = DDP(model.net, device_ids=[experiment.device.index] if experiment.device.type == "cuda" else None)
        experiment.run(num_epochs=1, max_iterations=iterations)
        probe = torch.ones(1, device=experiment.device) * (dist.get_rank() + 1)
        dist.all_reduce(probe)  # sum over ranks of rank + 1: N (N + 1) / 2
        world = dist.get_world_size()
        last, ok = finite_losses(experiment.iteration_history or experiment.history)
        first = (experiment.iteration_history or experiment.history)[0].get("loss")
        if dist.get_rank() == 0:
            print(json.dumps({"ok": ok and float(probe) == world * (world + 1) / 2 and experiment.iteration == iterations,
                              "backend": dist.get_backend(), "world_size": world, "device": str(experiment.device),
                              "iterations": experiment.iteration, "first_loss": first, "last_losses": last}))
    dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------- driver
def run_step(name: str, command: list[str], env: dict, timeout: float, parse_json: bool = True) -> dict:
    """``command`` in a subprocess (its last stdout line is its JSON result); the result with wall time, or the error."""
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=max(1.0, timeout), cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "wall_s": round(time.perf_counter() - started, 1)}
    wall = round(time.perf_counter() - started, 1)
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-6:]
        return {"ok": False, "error": f"exit status {completed.returncode}", "stderr_tail": tail, "wall_s": wall}
    if not parse_json:
        return {"ok": True, "wall_s": wall, "stdout_tail": completed.stdout.strip().splitlines()[-2:]}
    try:
        result = json.loads(completed.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"ok": False, "error": "no JSON result", "stdout_tail": completed.stdout.strip().splitlines()[-4:],
                "wall_s": wall}
    result.setdefault("ok", True)
    return {**result, "wall_s": wall}


def plan(device: str, quick: bool, notebook: bool) -> list[tuple[str, list[str] | str]]:
    """(step name, command) in order, or (step name, reason) for a skipped step."""
    import runtime
    import torch

    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--device", device] + (["--quick"] if quick else [])
    bf16_reason = None
    if device == "cuda" and not runtime.bf16_supported("cuda"):
        bf16_reason = f"bf16 autocast needs compute capability >= 8.0, this GPU has {torch.cuda.get_device_capability()}"
    steps: list[tuple[str, list[str] | str]] = []
    if notebook:
        steps.append(("demo_notebook", [sys.executable, str(ROOT / ".ci" / "run_notebook.py"), str(ROOT / "demo.ipynb")]))
    else:
        steps.append(("demo_notebook", "skipped with --quick (minutes on a CPU; --notebook runs it)"))
    for network in ("realtime", "cyclegan", "adain"):
        for precision in ("fp16", "bf16"):
            name = f"train_{network}_{precision}"
            if precision == "fp16" and device != "cuda":
                steps.append((name, "fp16 autocast needs CUDA (it would run fp32 here)"))
            elif precision == "bf16" and bf16_reason:
                steps.append((name, bf16_reason))
            else:
                steps.append((name, me + ["--step", f"{network}:{precision}"] + common))
    steps.append(("bench_gatys", "see the rows"))
    steps.append(("ddp_smoke", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                                str(Path(__file__).resolve()), "--step", "ddp"] + common))
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of the check itself)")
    parser.add_argument("--notebook", action="store_true", help="execute demo.ipynb even with --quick")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations (default 20; --quick 3)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole check (default 480 on CUDA, 1200 on the CPU)")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    cli.add_run_flags(parser, "JSON file (default: bench/results/gpu_check_<device>[_quick].json)",
                      device_default="cuda", flags=("device", "threads", "output"))
    args = parser.parse_args()
    if args.device not in BUDGET_S:
        parser.error(f"--device must be cuda or cpu, got {args.device!r}")
    iterations = args.iterations or (3 if args.quick else 20)
    args.budget = args.budget or BUDGET_S[args.device]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.step == "ddp":
        ddp_worker(args.device, iterations)
        return 0
    if args.step:
        network, precision = args.step.split(":")
        print(json.dumps(train_step(network, precision, args.device, iterations, args.quick)))
        return 0

    import torch
    from runtime import device_description

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but no usable CUDA GPU here (use --device cpu --quick)", file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # every step, the notebook and bench_gatys pick the CPU
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    deadline = time.monotonic() + args.budget
    load_start = load_average()
    report: dict = {"device": device_description() if args.device == "cuda" else f"{device_description()} (forced)",
                    "device_type": args.device, "quick": args.quick, "iterations": iterations,
                    "torch": torch.__version__, "cuda": torch.version.cuda, "threads": args.threads,
                    "precision_auto": None, "budget_s": args.budget,
                    "time": utc_timestamp(), "load_average_1min_start": load_start,
                    "steps": {}}
    import runtime

    report["precision_auto"] = runtime.resolve_precision("auto", args.device)
    steps = plan(args.device, args.quick, args.notebook or not args.quick)
    for position, (name, command) in enumerate(steps):
        remaining = deadline - time.monotonic()
        left = len(steps) - position
        if isinstance(command, str) and name != "bench_gatys":
            report["steps"][name] = {"ok": None, "skipped": command}
            continue
        if remaining < 5:
            report["steps"][name] = {"ok": False, "error": "budget spent before this step"}
            continue
        share = remaining if left == 1 else max(remaining / left * 2, 30.0)  # a slow step may borrow from the rest
        share = min(share, remaining)
        print(f"[gpu_check] {name} (up to {share:.0f} s) ...", flush=True)
        if name == "demo_notebook":
            with tempfile.TemporaryDirectory() as folder:
                step_env = dict(env, DEMO_OUTPUT_DIR=folder)
                report["steps"][name] = run_step(name, command + [str(Path(folder) / "demo_executed.ipynb")],
                                                 step_env, share, parse_json=False)
        elif name == "bench_gatys":
            report["steps"][name] = bench_gatys(args, env, share)
        else:
            report["steps"][name] = run_step(name, command, env, share)
        print(f"[gpu_check] {name}: {json.dumps(report['steps'][name])[:300]}", flush=True)
    report["load_average_1min_end"] = load_average()
    report["total_s"] = round(args.budget - (deadline - time.monotonic()), 1)
    ran = [s for s in report["steps"].values() if s.get("ok") is not None]
    report["all_passed"] = bool(ran) and all(s["ok"] for s in ran)
    out = Path(args.output) if args.output else ROOT / "bench" / "results" / (
        f"gpu_check_{args.device}{'_quick' if args.quick else ''}.json")
    write_json(report, out)
    print(f"[gpu_check] {'all passed' if report['all_passed'] else 'FAILED'} in {report['total_s']} s -> {out}")
    return 0 if report["all_passed"] else 1


def bench_gatys(args: argparse.Namespace, env: dict, budget: float) -> dict:
    """bench_gatys.py's worker, one configuration per subprocess (fresh peak memory); fp16 only on CUDA."""
    import runtime

    sizes = SIZES["gatys"][1 if args.quick else 0]
    configs = ["fp32 channels_last"]
    if args.device == "cuda":
        configs += (["bf16 channels_last"] if runtime.bf16_supported("cuda") else []) + ["fp16 channels_last"]
    elif runtime.bf16_native("cpu"):
        configs.append("bf16 channels_last")
    started, rows = time.monotonic(), []
    for config in configs:
        command = [sys.executable, str(ROOT / "bench" / "bench_gatys.py"), "--worker", str(sizes["size"]), config,
                   "--iterations", str(sizes["iterations"])] + (["--threads", str(args.threads)] if args.threads else [])
        row = run_step("bench_gatys", command, env, budget - (time.monotonic() - started))
        rows.append({"config": config, **row})
    return {"ok": all(r.get("ok") and math.isfinite(r.get("loss_after_fp32", float("nan"))) for r in rows),
            "size": sizes["size"], "timed_iterations": sizes["iterations"], "rows": rows}


if __name__ == "__main__":
    sys.exit(main())
