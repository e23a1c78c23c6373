"""The CycleGAN targets of the training campaign (docs/training_campaign.md) for exported generators or a run.

    python bench/eval_cyclegan.py SOURCE [SOURCE ...] [--photos DIR] [--paintings DIR] [--size 256] [--output FILE]

A SOURCE is a folder of exported generators (``cyclegan_*.pth`` beside a MANIFEST.json: ``assets/`` or a run's
``--export-dir``) or a run folder (its epoch copies and last checkpoint). All are judged on the held-out photos and
paintings named in the shipped recipe (``assets/MANIFEST.json``), so every row is on the same images:
``evaluation.evaluate_cyclegan`` (cycle L1, painting probe, checkerboard index). Prints one JSON line per model and
appends them to ``--output`` when given. Needs the training folders (``../shared/data``) for the probe.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import cyclegan  # noqa: E402
import evaluation  # noqa: E402
import torch  # noqa: E402
import weights  # noqa: E402


def models_in(source: Path) -> list[tuple[str, torch.nn.Module, torch.nn.Module, dict]]:
    """(label, photo2painting, painting2photo, info) for an export folder or for each checkpoint of a run folder."""
    if (source / "MANIFEST.json").exists():
        recipe = weights.read_manifest(source / "MANIFEST.json")["cyclegan_photo2painting.pth"]["recipe"]
        generators = [cyclegan.load_generator(d, assets_dir=source, device="cpu", precision="fp32")
                      for d in ("photo2painting", "painting2photo")]
        return [(str(source), *generators, {"iteration": recipe.get("iterations"), "upsampling": recipe.get("upsampling")})]
    checkpoints = sorted(source.glob("checkpoint_epoch*.pth.tar")) + [source / "checkpoint.pth.tar"]
    return [(str(path), *evaluation.generators_from_checkpoint(path)) for path in checkpoints if path.exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "photos"))
    parser.add_argument("--paintings", default=str(ROOT.parent / "shared" / "data" / "paintings"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None, help="JSON-lines file the rows are appended to")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = weights.read_manifest(weights.ASSETS_DIR / "MANIFEST.json")["cyclegan_photo2painting.pth"]["recipe"]["data"]
    probe, photos, paintings, vgg = evaluation.held_out_set(args.photos, args.paintings, data["held_out_photos"],
                                                            data["held_out_paintings"], args.size)
    for source in args.sources:
        for label, photo2painting, painting2photo, info in models_in(source):
            with torch.no_grad():
                numbers = evaluation.evaluate_cyclegan(photo2painting, painting2photo, photos, paintings, probe, vgg)
            row = {"model": label, **info, "size": args.size, "time": time.strftime("%Y-%m-%d %H:%M"),
                   **{k: round(v, 4) for k, v in numbers.items()}}
            print(json.dumps(row), flush=True)
            if args.output:
                with open(args.output, "a") as file:
                    file.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
