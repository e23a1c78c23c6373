"""Real-time network training in fp32 vs bf16 autocast on the current device: seconds per iteration and the
held-out losses reached after the same iterations from the same initial weights and batches (evaluated in fp32).

    python bench/bench_training_precision.py --photos ../shared/data/photos --threads 1

Writes ``bench/results/training_precision_<device>.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import cli  # noqa: E402
import realtime  # noqa: E402
import runtime  # noqa: E402
import torch  # noqa: E402
from benchlib import load_average, utc_timestamp, write_json  # noqa: E402
from runtime import device_description  # noqa: E402


def run(photos: Path, style: Path, amp: bool | str, args: argparse.Namespace, folder: Path) -> dict:
    options = realtime.RealtimeOptions(image_size=args.size, batch_size=args.batch_size, width=args.width,
                                       iterations=args.iterations, sample_every=args.iterations, holdout=8,
                                       content_weight=1.0, style_weight=1.0, tv_weight=1.0, amp=amp)
    started = time.perf_counter()
    experiment = realtime.train_realtime(photos, {style.stem: style}, folder, options, progress=False)
    seconds = time.perf_counter() - started
    experiment.model.amp = False  # evaluate every run in fp32, so the rows are on one scale
    held_out = experiment.evaluate()
    return {"amp": amp or "fp32", "iterations": experiment.iteration, "seconds": round(seconds, 1),
            "s_per_iteration": round(seconds / experiment.iteration, 3),
            "heldout_fp32": {k: round(float(v), 4) for k, v in held_out.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", required=True, help="folder of training photos")
    parser.add_argument("--style", default=str(ROOT / "assets" / "starry_night.jpg"))
    parser.add_argument("--iterations", type=int, default=130)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--width", type=float, default=0.5)
    cli.add_run_flags(parser, "JSON file (default: bench/results/training_precision_<cpu|cuda>.json)",
                      flags=("threads", "output"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = runtime.pick_device().type
    modes: list[bool | str] = ([False] + (["bf16"] if runtime.bf16_supported(runtime.pick_device()) else [])
                               + (["fp16"] if device == "cuda" else []))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for amp in modes:
            row = run(Path(args.photos), Path(args.style), amp, args, Path(scratch) / str(amp))
            print(json.dumps(row))
            rows.append(row)
    summary = {"device": device_description(),
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "load_average_1min": load_average(),
               "settings": f"real-time network width {args.width}, {args.size} px crops, batch {args.batch_size}, "
                           f"{args.iterations} iterations, Starry Night, lambda_c = lambda_s = lambda_TV = 1; "
                           "seconds include the per-epoch held-out validation and checkpoints",
               "time": utc_timestamp(), "rows": rows}
    target = Path(args.output) if args.output else ROOT / "bench" / "results" / f"training_precision_{device}.json"
    write_json(summary, target)


if __name__ == "__main__":
    main()
