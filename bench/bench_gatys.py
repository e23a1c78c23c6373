"""Benchmark: seconds per L-BFGS evaluation and peak memory of the Gatys optimisation at 256 and 512 px.

    python bench/bench_gatys.py [--sizes 256 512] [--iterations 40] [--threads N]

Default settings of ``gatys.GatysOptions`` (normalised VGG19, content relu4_2, style relu1_1..relu5_1, L-BFGS, one
function evaluation per iteration) on assets/carcassonne.jpg in the style of assets/starry_night.jpg. Each
configuration runs in a fresh subprocess, so peak memory does not carry over: process peak RSS on the CPU,
``torch.cuda.max_memory_allocated`` on CUDA. Compared: fp32 contiguous, fp32 channels_last (the default), and
channels_last with bf16 autocast (and fp16 on CUDA), with the loss each reaches after ``--iterations`` (mixed
precision can be faster but land higher). That loss is re-evaluated in fp32 on the final image, so every
configuration is scored on one scale; the gap between the two fp32 layouts shows how far rounding alone moves an
L-BFGS trajectory in that many iterations. Set-up and target computation are excluded from the time per evaluation.
Prints a markdown table; writes JSON to bench/results/gatys_<device>.json (with the 1-minute load average before
and after: on a shared CPU the absolute times depend on it, the ratios much less).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import cli  # noqa: E402
from benchlib import load_average, utc_timestamp, write_json  # noqa: E402

CONFIGS = {"fp32": (False, "fp32"), "fp32 channels_last": (True, "fp32"), "bf16 channels_last": (True, "bf16"),
           "fp16 channels_last": (True, "fp16")}


def measure(size: int, config: str, iterations: int, threads: int | None) -> dict:
    """One configuration in this process: seconds per evaluation (median of the steady state), memory, loss."""
    import torch
    from gatys import GatysOptions, StyleTransfer
    from imaging import load_image
    from runtime import pick_device, synchronize

    if threads:
        torch.set_num_threads(threads)
    device = pick_device()
    channels_last, precision = CONFIGS[config]
    content = load_image(ROOT / "assets" / "carcassonne.jpg", size)
    style = load_image(ROOT / "assets" / "starry_night.jpg", size)
    stamps: list[float] = []

    def stamp(iteration: int, image, record) -> None:
        synchronize(device)
        stamps.append(time.perf_counter())

    options = GatysOptions(size=size, iterations=iterations + 2, channels_last=channels_last, precision=precision,
                           snapshot_every=1, progress=False)
    transfer = StyleTransfer(options)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = transfer.run(content, style, callback=stamp)
    steady = [b - a for a, b in zip(stamps[2:], stamps[3:])]  # skip 2 warm-up iterations
    steady.sort()
    # The history's losses come from the autocast passes; re-evaluate the final image in fp32 so that the
    # configurations are compared on one scale (a bf16 loss is itself rounded).
    transfer.options, transfer.precision = replace(options, precision="fp32"), "fp32"
    content, style = content.to(device), style.to(device)  # the images were loaded on the CPU, the VGG is on device
    with torch.no_grad():
        content_targets = {n: f.float() for n, f in transfer.features(content).items()
                           if n in options.content_layer_weights()}
        style_targets = transfer.style_targets([style], [1.0])
        fp32_loss = float(transfer.losses(result.image.to(device), content_targets, style_targets)["total"])
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
        memory_kind = "torch.cuda.max_memory_allocated"
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory_kind = "process peak RSS"
    return {"size": size, "config": config, "height_width": list(result.image.shape[-2:]),
            "s_per_evaluation": steady[len(steady) // 2], "peak_memory_mib": round(peak_mib, 1),
            "memory_kind": memory_kind, "iterations": iterations + 2,
            "loss_after": result.history[-1]["total"], "loss_start": result.history[0]["total"],
            "loss_after_fp32": fp32_loss,
            "device": str(device), "threads": torch.get_num_threads()}


def markdown_table(summary: dict) -> str:
    """The results as a markdown table; speed and loss relative to fp32 contiguous at the same size."""
    lines = [f"Device: {summary['device']}, {summary['threads']} thread(s), torch {summary['torch']}, "
             f"load average {summary['load_average_1min_start']:.1f} -> {summary['load_average_1min']:.1f} "
             f"(1 min), {summary['time']}.", "",
             "| size (W x H) | configuration | s / L-BFGS evaluation | speed-up | peak memory (MiB) "
             f"| loss after {summary['rows'][0]['iterations']} iterations (fp32) | vs fp32 |",
             "|---|---|---|---|---|---|---|"]
    baseline = {row["size"]: row for row in summary["rows"] if row["config"] == "fp32"}
    for row in summary["rows"]:
        h, w = row["height_width"]
        base = baseline.get(row["size"], row)
        lines.append(f"| {w} x {h} | {row['config']} | {row['s_per_evaluation']:.3f} | "
                     f"{base['s_per_evaluation'] / row['s_per_evaluation']:.2f}x | {row['peak_memory_mib']:.0f} | "
                     f"{row['loss_after_fp32']:.4g} | {row['loss_after_fp32'] / base['loss_after_fp32'] - 1:+.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--iterations", type=int, default=40, help="timed L-BFGS iterations (after 2 warm-up)")
    cli.add_run_flags(parser, "JSON file (default: bench/results/gatys_<cpu|cuda>.json)", flags=("threads", "output"))
    parser.add_argument("--configs", nargs="+", default=None, choices=sorted(CONFIGS))
    parser.add_argument("--worker", nargs=2, metavar=("SIZE", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(int(args.worker[0]), args.worker[1], args.iterations, args.threads)))
        return

    import torch

    load_start = load_average()
    from runtime import bf16_supported, device_description, pick_device

    device = pick_device()
    cuda = device.type == "cuda"
    configs = args.configs or [c for c in CONFIGS if (cuda or not c.startswith("fp16"))
                               and (bf16_supported(device) or not c.startswith("bf16"))]
    rows = []
    for size in args.sizes:
        for config in configs:
            command = [sys.executable, __file__, "--worker", str(size), config, "--iterations", str(args.iterations)]
            if args.threads:
                command += ["--threads", str(args.threads)]
            completed = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads(completed.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{size} px {config}: {row['s_per_evaluation']:.3f} s/evaluation, {row['peak_memory_mib']:.0f} MiB, "
                  f"loss after {row['iterations']} = {row['loss_after_fp32']:.4g} (fp32)", flush=True)
    summary = {"device": device_description(), "torch": torch.__version__, "threads": rows[0]["threads"],
               "load_average_1min_start": load_start, "load_average_1min": load_average(),
               "time": utc_timestamp(),
               "settings": "GatysOptions defaults (normalised VGG19, relu4_2 / relu1_1..relu5_1, L-BFGS, "
                           "alpha 1, beta 1e7, content init); carcassonne.jpg in the style of starry_night.jpg",
               "rows": rows}
    name = "cuda" if cuda else "cpu"
    out = Path(args.output).resolve() if args.output else ROOT / "bench" / "results" / f"gatys_{name}.json"
    write_json(summary, out)
    print("\n" + markdown_table(summary))


if __name__ == "__main__":
    main()
