"""Where one training step of the real-time network spends its time (issue #12, point 3: profile before the levers).

    python bench/profile_realtime_step.py --photos ../shared/data/photos [--threads 1] [--steps 8]

One step of ``RealtimeStyleModel`` (Johnson et al. sec. 3: transform network, then the VGG loss network on its output
and on the content), split by wall-clock stamps into: loading a batch of crops, the transform network's forward, the
loss network's forward (output and content features, Gram matrices), the backward through the loss network (up to
the gradient at the transform network's output, stamped by a tensor hook), the backward through the transform
network, and Adam. Median of ``--steps`` steps after 2 warm-up ones, for crops of 128 and 256 px, widths 0.5 and 1,
fp32 and bf16 autocast (where the CPU runs it natively). Writes ``bench/results/realtime_step_profile_<device>.json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import realtime  # noqa: E402
import runtime  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from benchlib import load_average, utc_timestamp, write_json  # noqa: E402
from imaging import ImageFolderDataset, load_image  # noqa: E402

PHASES = ("data", "transformer_forward", "vgg_forward", "vgg_backward", "transformer_backward", "adam")


def profile(photos: Path, styles: dict, size: int, width: float, precision: str, steps: int) -> dict:
    options = realtime.RealtimeOptions(image_size=size, width=width, style_size=256, batch_size=4,
                                       content_weight=1.0, style_weight=1.0)
    model = realtime.RealtimeStyleModel(options, styles)
    data = ImageFolderDataset(photos, size, round(size * 1.5), options.crop_scale, flip=True, train=True)
    optimizer = model.optimizers["transformer"]
    rows = []
    for step in range(steps + 2):
        stamps = [time.perf_counter()]
        content = torch.stack([data[(step * 4 + i) % len(data)] for i in range(4)])
        weights = F.one_hot(torch.full((4,), step % len(styles)), len(styles)).float()
        stamps.append(time.perf_counter())
        with runtime.precision_autocast(precision, "cpu"):
            output = model.transformer(content, weights)
            stamps.append(time.perf_counter())
            losses = model.loss(output, content, weights)
        stamps.append(time.perf_counter())
        output.register_hook(lambda grad: stamps.append(time.perf_counter()))
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        stamps.append(time.perf_counter())
        optimizer.step()
        stamps.append(time.perf_counter())
        if step >= 2:
            rows.append([b - a for a, b in zip(stamps, stamps[1:])])
    medians = {phase: statistics.median(row[i] for row in rows) for i, phase in enumerate(PHASES)}
    total = sum(medians.values())
    return {"size": size, "width": width, "precision": precision, "step_seconds": round(total, 3),
            "seconds": {k: round(v, 4) for k, v in medians.items()},
            "share": {k: round(v / total, 3) for k, v in medians.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    styles = {name: load_image(ROOT / "assets" / f"{name}.jpg", 256)
              for name in ("starry_night", "great_wave", "kandinsky_composition_viii", "night_cafe")}
    precisions = ["fp32"] + (["bf16"] if runtime.cpu_bf16_native() else [])
    load_start = load_average()
    rows = []
    for size in (128, 256):
        for width in (0.5, 1.0):
            for precision in precisions:
                row = profile(args.photos, styles, size, width, precision, args.steps)
                print(json.dumps(row), flush=True)
                rows.append(row)
    device = runtime.device_description(torch.device("cpu"))
    summary = {"device": device, "threads": args.threads, "batch_size": 4, "steps": args.steps,
               "load_average_1min_start": load_start, "load_average_1min": load_average(),
               "time": utc_timestamp(), "torch": torch.__version__, "rows": rows}
    out = args.output or ROOT / "bench" / "results" / "realtime_step_profile_cpu.json"
    write_json(summary, out, indent=1)


if __name__ == "__main__":
    main()
