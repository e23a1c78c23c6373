"""At which input size do the shipped transform network's strokes read? (issue #12, point 3)

    python bench/realtime_stroke_size.py [--sizes 256 384 512 768 1024] [--display 512] [--threads 1]

The network's strokes have a fixed size in pixels (learnt on 256-px crops), so the larger the photo it runs on, the
smaller they look once the result is shown at a fixed size. For each input size S, the shipped network stylises the
recipe's first 4 held-out photos (longest side S) in each style; the output is resized to the display size (longest
side ``--display``, as a figure shows it) and scored there with the shipped objective's style term (Johnson eq. 4,
Grams normalised by C H W, style targets at the recipe's style size): the lower, the more the displayed strokes have the
style's statistics. ``evaluation.realtime_loss_by_size`` (each size scored at its own resolution) is reported beside it.
Writes ``bench/results/realtime_stroke_size_cpu.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import evaluation  # noqa: E402
import losses  # noqa: E402
import realtime  # noqa: E402
import runtime  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from benchlib import load_average, utc_timestamp, write_json  # noqa: E402
from imaging import load_image, resize_tensor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 384, 512, 768, 1024])
    parser.add_argument("--display", type=int, default=512, help="longest side the outputs are shown at")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "realtime_stroke_size_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = realtime.load_style_model("realtime_4styles", device="cpu", precision="fp32")
    recipe = realtime.model_recipe(model)
    options = realtime.model_options(model)
    styles = {name: load_image(path, options.style_size) for name, path in realtime.shipped_style_images(model).items()}
    photos = [args.photos / name for name in recipe["held_out"][:4]]
    loss = losses.PerceptualLoss(options, list(styles.values()))
    load_start = load_average()
    rows = []
    for size in args.sizes:
        for index, style in enumerate(styles):
            one_hot = F.one_hot(torch.tensor([index]), len(styles)).float()
            displayed = []
            for photo in photos:
                with torch.no_grad():
                    output = realtime.stylize(load_image(photo, size), model, style)
                    shown = resize_tensor(output.clamp(0, 1), args.display)
                    displayed.append(float(loss(shown, shown, one_hot)["style"]))
            rows.append({"size": size, "style": style, "style_loss_at_display": sum(displayed) / len(displayed)})
    own = evaluation.realtime_loss_by_size(model, photos, args.sizes, styles, options)
    for row, at_own_size in zip(rows, own):
        row["style_loss_at_own_size"] = at_own_size["style_loss"]
    best = {style: min((r for r in rows if r["style"] == style), key=lambda r: r["style_loss_at_display"])["size"]
            for style in styles}
    result = {"device": runtime.device_description(torch.device("cpu")), "threads": args.threads,
              "load_average_1min": load_start, "time": utc_timestamp(),
              "display": args.display, "photos": [p.name for p in photos], "rows": rows,
              "best_size_by_style": best}
    write_json(result, args.output, indent=1)
    for row in rows:
        print(f"{row['size']:5d} {row['style']:28s} at display {row['style_loss_at_display']:.4f}   "
              f"at its own size {row['style_loss_at_own_size']:.4f}")
    print("lowest at display size:", best)


if __name__ == "__main__":
    main()
