"""Benchmark: milliseconds per image of the real-time network vs. the Gatys optimisation, at 256, 512, 1024 px.

    python bench/bench_realtime.py [--model realtime_4styles.pth] [--sizes 256 512 1024] [--gatys-iterations 500]
                                   [--measure-iterations 2] [--threads 1]

The network's time is the median of a few forward passes (after a warm-up). The optimisation's time is measured
for ``--measure-iterations`` L-BFGS iterations of ``gatys.stylize_gatys`` (paper layers: content relu4_2, style
relu1_1..relu5_1) at the same size, the style image at the same size, and extrapolated to
``--gatys-iterations`` (time per iteration x iterations). Prints a markdown table; writes JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import cli  # noqa: E402
import gatys  # noqa: E402
import realtime  # noqa: E402
import runtime  # noqa: E402
import torch  # noqa: E402
from benchlib import utc_timestamp, write_json  # noqa: E402
from models import TransformerNet  # noqa: E402


def time_network(model: TransformerNet, size: int, device: torch.device, repeats: int) -> float:
    """Median milliseconds of one stylisation of a size x size image (includes padding/cropping)."""
    image = torch.rand(1, 3, size, size, device=device)
    realtime.stylize(image, model)  # warm-up
    times = []
    for _ in range(repeats):
        runtime.synchronize(device)
        start = time.perf_counter()
        realtime.stylize(image, model)
        runtime.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def time_gatys_iteration(size: int, device: torch.device, iterations: int) -> float:
    """Milliseconds per L-BFGS iteration of ``gatys.stylize_gatys`` (paper layers, VGG19) at size x size: the time
    between the first and the last of ``iterations + 1`` iterations (set-up and target computation excluded)."""
    content = torch.rand(1, 3, size, size)
    style = torch.rand(1, 3, size, size)
    stamps: list[float] = []

    def stamp(iteration: int, image: torch.Tensor, record: dict) -> None:
        runtime.synchronize(device)
        stamps.append(time.perf_counter())

    gatys.stylize_gatys(content, style, size=size, iterations=iterations + 1, progress=False, device=str(device),
                        snapshot_every=1, callback=stamp)
    return (stamps[-1] - stamps[0]) * 1000 / (len(stamps) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="shipped model (default: the first real-time model in assets)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--gatys-iterations", type=int, default=500, help="iterations the optimisation needs")
    parser.add_argument("--measure-iterations", type=int, default=3, help="L-BFGS iterations actually timed")
    parser.add_argument("--repeats", type=int, default=5)
    cli.add_run_flags(parser, "JSON file (default: bench/results/realtime_<cpu|cuda>.json)", flags=("device", "threads", "output"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = args.model or next(iter(realtime.available_models()), None)
    model = realtime.load_style_model(name, device=device) if name else TransformerNet().eval().to(device)
    device_name = runtime.device_description(device)
    rows = []
    for size in args.sizes:
        network_ms = time_network(model, size, device, args.repeats)
        iteration_ms = time_gatys_iteration(size, device, args.measure_iterations)
        gatys_ms = iteration_ms * args.gatys_iterations
        rows.append({"size": size, "network_ms": network_ms, "gatys_ms_per_iteration": iteration_ms,
                     "gatys_iterations": args.gatys_iterations, "gatys_ms": gatys_ms, "speedup": gatys_ms / network_ms})
        print(f"{size}px: network {network_ms:.0f} ms, L-BFGS {iteration_ms:.0f} ms/iteration", flush=True)
    print(f"\nDevice: {device_name}; torch {torch.__version__}; model {name or 'untrained TransformerNet'} "
          f"(width {model.width}); Gatys: {args.gatys_iterations} L-BFGS iterations "
          f"(time per iteration measured over {args.measure_iterations}, set-up excluded)\n")
    print("| size | network (ms/image) | Gatys L-BFGS (ms/iteration) | Gatys total (s) | speed-up |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['network_ms']:.0f} | {r['gatys_ms_per_iteration']:.0f} | {r['gatys_ms'] / 1000:.0f} | {r['speedup']:.0f}x |")
    results = {"device": device_name, "torch": torch.__version__, "model": name, "width": model.width,
               "time": utc_timestamp(), "rows": rows}
    tag = "cuda" if device.type == "cuda" else "cpu"
    path = Path(args.output) if args.output else ROOT / "bench" / "results" / f"realtime_{tag}.json"
    write_json(results, path)


if __name__ == "__main__":
    main()
