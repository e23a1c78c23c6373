"""Benchmark: CycleGAN training iterations/second, peak memory and inference milliseconds per image, at 128 and 256 px.

    python bench/bench_cyclegan.py [--sizes 128 256] [--ngf 32] [--n-blocks 6] [--steps 3] [--threads 1] [--precision fp16|bf16]

Each size runs in a fresh subprocess so that peak memory is that size's alone: ``torch.cuda.max_memory_allocated``
on a GPU, the process's peak resident set size (``resource.getrusage(...).ru_maxrss``, Python and torch included) on
a CPU. A training iteration is one full ``CycleGANModel.optimize_parameters`` (4 generator passes + 2 identity
passes, G step, D step) on a random batch of 1 (no data loading); inference is ``cyclegan.translate`` of one
image. Prints a markdown table; writes JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import cli  # noqa: E402
import cyclegan  # noqa: E402
import torch  # noqa: E402
from benchlib import format_load, load_average, utc_timestamp, write_json  # noqa: E402
from cyclegan import translate  # noqa: E402
from runtime import device_description, synchronize  # noqa: E402


def measure(size: int, ngf: int, n_blocks: int, steps: int, repeats: int, device: torch.device,
            amp: str | None) -> dict:
    """One size: training seconds per iteration, peak memory, inference milliseconds per image."""
    options = cyclegan.CycleGANOptions(size=size, ngf=ngf, n_blocks=n_blocks)
    model = cyclegan.CycleGANModel(options).to(device)
    model.device = device
    model.set_precision(amp, device)  # as nntools.Experiment does
    batch = {"A": torch.rand(1, 3, size, size), "B": torch.rand(1, 3, size, size)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.set_input(batch)
    model.optimize_parameters()  # warm-up (cuDNN autotuning, allocator)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        model.set_input(batch)
        model.optimize_parameters()
    synchronize(device)
    seconds_per_iteration = (time.perf_counter() - start) / steps
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
        memory_kind = "torch.cuda.max_memory_allocated"
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
        memory_kind = "process peak RSS (ru_maxrss)"
    generator = model.netG_A.eval()
    image = torch.rand(1, 3, size, size, device=device)
    translate(generator, image)  # warm-up
    times = []
    for _ in range(repeats):
        synchronize(device)
        begin = time.perf_counter()
        translate(generator, image)
        synchronize(device)
        times.append((time.perf_counter() - begin) * 1000)
    return {"size": size, "ngf": ngf, "n_blocks": n_blocks, "amp": amp or "fp32", "train_steps_timed": steps,
            "train_s_per_iteration": seconds_per_iteration, "train_iterations_per_s": 1 / seconds_per_iteration,
            "peak_memory_mib": peak_mib, "memory_kind": memory_kind, "inference_ms_per_image": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--ngf", type=int, default=None, help="default: 32 on CPU (the shipped model), 64 on GPU")
    parser.add_argument("--n-blocks", type=int, default=None, help="default: 6 on CPU, 9 on GPU (the paper's 256 px)")
    parser.add_argument("--steps", type=int, default=None, help="timed training iterations (default 3 CPU, 20 GPU)")
    parser.add_argument("--repeats", type=int, default=5, help="timed inference passes")
    cli.add_run_flags(parser, "JSON file (default: bench/results/cyclegan_<cpu|cuda>[_<precision>].json)",
                      precision_default="fp32")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    amp = cli.training_amp(args.precision, str(device)) or None
    gpu = device.type == "cuda"
    ngf = args.ngf or (64 if gpu else 32)
    n_blocks = args.n_blocks or (9 if gpu else 6)
    steps = args.steps or (20 if gpu else 3)
    if args.worker is not None:
        print(json.dumps(measure(args.worker, ngf, n_blocks, steps, args.repeats, device, amp)))
        return
    device_name = device_description(device)
    rows = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--worker", str(size), "--ngf", str(ngf), "--n-blocks", str(n_blocks),
                   "--steps", str(steps), "--repeats", str(args.repeats), "--device", str(device)]
        command += ["--threads", str(args.threads)] if args.threads else []
        command += ["--precision", amp] if amp else []
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(f"{size}px: {rows[-1]['train_s_per_iteration']:.2f} s/iteration", flush=True)
    load = load_average()
    print(f"\nDevice: {device_name}; torch {torch.__version__}; generator ngf={ngf}, {n_blocks} residual blocks; "
          f"70x70 PatchGAN ndf=64; batch 1; precision {amp or 'fp32'}; load average {format_load(load)}\n")
    print("| size | train iterations/s | s/iteration | peak memory (MiB) | inference (ms/image) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['train_iterations_per_s']:.3f} | {r['train_s_per_iteration']:.2f} | "
              f"{r['peak_memory_mib']:.0f} | {r['inference_ms_per_image']:.0f} |")
    print(f"\nmemory: {rows[0]['memory_kind']}")
    results = {"device": device_name, "torch": torch.__version__, "precision": amp or "fp32",
               "load_average_1min": load,
               "time": utc_timestamp(), "rows": rows}
    path = Path(args.output) if args.output else (
        ROOT / "bench" / "results" / f"cyclegan_{'cuda' if gpu else 'cpu'}{'_' + amp if amp else ''}.json")
    write_json(results, path)


if __name__ == "__main__":
    main()
