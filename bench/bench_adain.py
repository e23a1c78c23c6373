"""Benchmark: milliseconds per image of AdaIN (Huang & Belongie 2017) beside the real-time transform network, at 256,
512 and 1024 px, in fp32 and bf16 autocast.

    python bench/bench_adain.py [--sizes 256 512 1024] [--precisions fp32 bf16] [--repeats 3] [--threads 1]
                                [--output bench/results/adain_cpu.json]

Each figure is the median of ``--repeats`` stylisations of a size x size image (after one warm-up): for AdaIN one call
of ``adain.stylize_adain`` (content and style encoding, AdaIN, decoding; the style image at the same size), for the
network one ``realtime.stylize`` of the shipped ``realtime_4styles`` model. The device, thread count and the 1-minute
load average before and after are recorded, since a shared CPU slows everything down. Prints a markdown table; writes
JSON (default ``bench/results/adain_<cpu|cuda>.json``).
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))
sys.path.insert(0, str(ROOT / "bench"))

import adain  # noqa: E402
import cli  # noqa: E402
import realtime  # noqa: E402
import torch  # noqa: E402
from benchlib import format_load, load_average, utc_timestamp, write_json  # noqa: E402
from runtime import device_description, synchronize  # noqa: E402


def median_ms(run, device: torch.device, repeats: int) -> float:
    """Median milliseconds of ``run()`` over ``repeats`` calls after one warm-up."""
    run()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def cpu_bf16_instructions() -> list[str]:
    """The CPU's native bf16 instruction sets (without them bf16 is emulated and much slower than fp32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if f in ("avx512_bf16", "amx_bf16", "avx_ne_convert")})


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16", "fp16"], default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=3)
    cli.add_run_flags(parser, "JSON file (default: bench/results/adain_<cpu|cuda>.json)", flags=("device", "threads", "output"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    load_start = load_average()
    model = adain.load_adain(device=device)
    network = realtime.load_style_model("realtime_4styles", device=device)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for size in args.sizes:
        content = torch.rand(1, 3, size, size, generator=generator)
        style = torch.rand(1, 3, size, size, generator=generator)
        for precision in args.precisions:
            adain_ms = median_ms(lambda: adain.stylize_adain(content, style, model, precision=precision), device, args.repeats)

            def network_run() -> None:
                with autocast(device, precision):
                    realtime.stylize(content, network)

            network_ms = median_ms(network_run, device, args.repeats)
            rows.append({"size": size, "precision": precision, "adain_ms": adain_ms, "transform_net_ms": network_ms})
            print(f"{size} px {precision}: AdaIN {adain_ms:.0f} ms, transform network {network_ms:.0f} ms", flush=True)
    results = {"device": device_description(device),
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "cpu_bf16_instructions": cpu_bf16_instructions() if device.type == "cpu" else None,
               "load_average_1min_start": load_start, "load_average_1min_end": load_average(),
               "repeats": args.repeats, "time": utc_timestamp(),
               "transform_net": "realtime_4styles.pth (width 0.5)", "rows": rows}
    print(f"\nDevice: {results['device']}, {results['threads']} thread(s), torch {results['torch']}, load average "
          f"{format_load(load_start)} -> {format_load(results['load_average_1min_end'])}, native bf16 instructions: "
          f"{', '.join(results['cpu_bf16_instructions'] or []) or 'none (bf16 emulated)'}\n")
    print("| size | precision | AdaIN (ms/image) | transform network (ms/image) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['precision']} | {r['adain_ms']:.0f} | {r['transform_net_ms']:.0f} |")
    path = Path(args.output) if args.output else ROOT / "bench" / "results" / f"adain_{device.type}.json"
    return write_json(results, path)


if __name__ == "__main__":
    main()
