"""The CycleGAN targets of the training campaign (docs/training_campaign.md) for exported generators or a run.

    python bench/eval_cyclegan.py SOURCE [SOURCE ...] [--photos DIR] [--paintings DIR] [--size 256] [--output FILE]
    python bench/eval_cyclegan.py --plot-rows bench/results/cyclegan_campaign.jsonl --plot docs/campaign_cyclegan.png

A SOURCE is a folder of exported generators (``cyclegan_*.pth`` beside a MANIFEST.json: ``assets/`` or a run's
``--export-dir``) or a run folder (its epoch copies and last checkpoint). All are judged on the held-out photos and
paintings named in the shipped recipe (``assets/MANIFEST.json``), so every row is on the same images:
``evaluation.evaluate_cyclegan`` (cycle L1, painting probe, checkerboard index). Prints one JSON line per model and
appends them to ``--output`` when given. Needs the training folders (``../shared/data``) for the probe.
``--unseen-photos DIR --unseen-paintings DIR`` adds the same numbers (keys ``unseen_*``) on images that no run used,
with the same probe: a second, independent check of generalisation.

``--ship-to assets`` (one export folder as SOURCE) copies its generators there, SHA-256 and recipe in the manifest,
with the held-out numbers and the CPU time of the whole warm-start chain added to the recipe: only do it when the
numbers beat the shipped ones (docs/training_campaign.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import cyclegan  # noqa: E402
import evaluation  # noqa: E402
import torch  # noqa: E402
import weights  # noqa: E402
from imaging import domain_files  # noqa: E402


def models_in(source: Path) -> list[tuple[str, torch.nn.Module, torch.nn.Module, dict]]:
    """(label, photo2painting, painting2photo, info) for an export folder or for each checkpoint of a run folder."""
    if (source / "MANIFEST.json").exists():
        recipe = weights.read_manifest(source / "MANIFEST.json")["cyclegan_photo2painting.pth"]["recipe"]
        generators = [cyclegan.load_generator(d, assets_dir=source, device="cpu", precision="fp32")
                      for d in ("photo2painting", "painting2photo")]
        info = {"iteration": recipe.get("iterations"), "upsampling": recipe.get("upsampling"),
                "cpu_hours": round(chain_seconds(recipe) / 3600, 2)}
        return [(str(source), *generators, info)]
    return [(str(path), *evaluation.generators_from_checkpoint(path)) for path in evaluation.run_checkpoints(source)]


def chain_seconds(recipe: dict) -> float:
    """Wall seconds of a run and of every run it was warm-started from (``warm_start`` records, G_A's chain)."""
    seconds, link = float(recipe.get("wall_time_s") or 0.0), recipe.get("warm_start")
    while link:
        link = link.get("G_A", link)
        seconds += float(link.get("wall_time_s") or 0.0)
        link = link.get("warm_start")
    return seconds


def plot(rows: list[dict], path: Path) -> "matplotlib.figure.Figure":
    """The held-out numbers of exported generators against the CPU-hours of their warm-start chains: the shipped
    chain (rows with ``"shipped": true``, or all rows if none says) as a line, the others as labelled markers; panels:
    cycle L1, the painting probe and the checkerboard index, each with its target. Rows from before a measure existed
    are left out of that measure's series."""
    import matplotlib.pyplot as plt

    rows = sorted((r for r in rows if r.get("cpu_hours") is not None), key=lambda r: r["cpu_hours"])
    chain = [r for r in rows if r.get("shipped", True)]
    others = [r for r in rows if not r.get("shipped", True)]
    figure, (cycle, probe_axis, checker) = plt.subplots(1, 3, figsize=(17, 4.6), layout="constrained")
    panels = ((cycle, (("cycle_l1_photo", "photo -> painting -> photo"),
                       ("cycle_l1_painting", "painting -> photo -> painting")),
               0.08, "cycle L1 in [0, 1]", "Cycle consistency, held out, 256 px"),
              (probe_axis, (("generated_paintings_called_paintings", "generated paintings called paintings"),
                            ("generated_photos_called_photos", "generated photos called photos"),
                            ("generated_paintings_mean_p", "generated paintings, mean p(painting)")),
               0.7, "fraction (or mean probability)", "Painting probe on generated images, held out"),
              (checker, (("checkerboard_generated_paintings", "generated paintings"),
                         ("checkerboard_generated_photos", "generated photos")),
               1.15, "checkerboard index (real images about 1)", "Checkerboard index, held out, 256 px"))
    for axis, series, target, ylabel, title in panels:
        for (key, label), colour in zip(series, ("tab:blue", "tab:orange", "tab:green")):
            on_chain = [r for r in chain if r.get(key) is not None]  # rows older than a measure lack it
            off_chain = [r for r in others if r.get(key) is not None]
            axis.plot([r["cpu_hours"] for r in on_chain], [r[key] for r in on_chain], "o-", color=colour,
                      label=f"{label}, shipped chain")
            axis.scatter([r["cpu_hours"] for r in off_chain], [r[key] for r in off_chain], marker="x", color=colour,
                         label=f"{label}, runs not shipped" if off_chain else None)
        for number, r in enumerate(others, start=1):
            axis.annotate(str(number), (r["cpu_hours"], r[series[0][0]]), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
        axis.axhline(target, color="grey", linestyle="--", label=f"target {target}")
        axis.set(xlabel="CPU-hours behind the generators (1 thread)", ylabel=ylabel, title=title)
        axis.legend(fontsize=7)
    probe = max(r.get("generated_paintings_called_paintings", 0) for r in rows)
    shipped_probe = chain[-1].get("generated_paintings_called_paintings", 0) if chain else 0
    notes = "; ".join(f"{n}: {r.get('label', r.get('model'))}" for n, r in enumerate(others, start=1))
    title = (f"CycleGAN generators over the CPU campaign: the probe takes {shipped_probe:.0%} of the shipped "
             f"generator's paintings for paintings (best run {probe:.0%}; target 70 %)")
    figure.suptitle("\n".join([title] + textwrap.wrap(f"x {notes}", 260)) if notes else title, fontsize=8,
                    y=1.0, va="bottom")
    figure.savefig(path, dpi=130, bbox_inches="tight")
    return figure


def ship(source: Path, assets_dir: Path, numbers: dict) -> None:
    """Re-store the export's fp16 generators in ``assets_dir`` with the held-out numbers in their recipes."""
    manifest = weights.read_manifest(source / "MANIFEST.json")
    for direction in cyclegan.DIRECTIONS:
        name = f"cyclegan_{direction}.pth"
        recipe = dict(manifest[name]["recipe"])
        recipe["heldout_256"] = numbers
        recipe["cpu_hours_chain"] = round(chain_seconds(recipe) / 3600, 2)
        state = weights.load_verified_weights(name, assets_dir=source, dtype=torch.float16)
        print(f"shipped {weights.save_fp16_weights(state, name, recipe, assets_dir=assets_dir)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="*", type=Path)
    parser.add_argument("--photos", default=str(ROOT.parent / "shared" / "data" / "photos"))
    parser.add_argument("--paintings", default=str(ROOT.parent / "shared" / "data" / "paintings"))
    parser.add_argument("--unseen-photos", type=Path, default=None,
                        help="a second check on images no run ever used (with --unseen-paintings): keys unseen_*")
    parser.add_argument("--unseen-paintings", type=Path, default=None)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None, help="JSON-lines file the rows are appended to")
    parser.add_argument("--ship-to", type=Path, default=None, help="copy the one export SOURCE's generators here")
    parser.add_argument("--plot", type=Path, default=None, help="figure of the exports' numbers against CPU-hours")
    parser.add_argument("--plot-rows", type=Path, default=None,
                        help="with --plot and no SOURCE: plot the rows of this JSON-lines file instead of evaluating")
    args = parser.parse_args()
    if args.plot_rows:
        if not args.plot:
            parser.error("--plot-rows needs --plot")
        plot([json.loads(line) for line in args.plot_rows.read_text().splitlines() if line.strip()], args.plot)
        return
    if not args.sources:
        parser.error("give at least one SOURCE (or --plot-rows FILE --plot PNG)")
    if args.ship_to and (len(args.sources) != 1 or not (args.sources[0] / "MANIFEST.json").exists()):
        parser.error("--ship-to takes exactly one export folder (with a MANIFEST.json) as SOURCE")
    if (args.unseen_photos is None) != (args.unseen_paintings is None):
        parser.error("--unseen-photos and --unseen-paintings go together")
    torch.set_num_threads(args.threads)
    unseen = None
    if args.unseen_photos:
        folders = {"--unseen-photos": args.unseen_photos, "--unseen-paintings": args.unseen_paintings}
        try:
            unseen = [evaluation.load_images(domain_files(folder, flag), args.size) for flag, folder in folders.items()]
        except (FileNotFoundError, ValueError) as error:
            parser.error(str(error))
    data = weights.read_manifest(weights.ASSETS_DIR / "MANIFEST.json")["cyclegan_photo2painting.pth"]["recipe"]["data"]
    probe, photos, paintings, vgg = evaluation.held_out_set(args.photos, args.paintings, data["held_out_photos"],
                                                            data["held_out_paintings"], args.size)
    rows = []
    for source in args.sources:
        for label, photo2painting, painting2photo, info in models_in(source):
            with torch.no_grad():
                numbers = evaluation.evaluate_cyclegan(photo2painting, painting2photo, photos, paintings, probe, vgg)
                if unseen:  # same probe (fit on the training images), other images
                    numbers |= {f"unseen_{k}": v for k, v in evaluation.evaluate_cyclegan(
                        photo2painting, painting2photo, *unseen, probe, vgg).items()}
            row = {"model": label, **info, "size": args.size, "time": time.strftime("%Y-%m-%d %H:%M"),
                   **{k: round(v, 4) for k, v in numbers.items()}}
            print(json.dumps(row), flush=True)
            rows.append(row)
            if args.ship_to:
                ship(source, args.ship_to, {k: round(v, 4) for k, v in numbers.items()})
            if args.output:
                with open(args.output, "a") as file:
                    file.write(json.dumps(row) + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
