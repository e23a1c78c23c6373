"""Short runs that measure the real-time network's training levers on the campaign's metric (issue #12, point 3).

    python bench/realtime_levers.py [--iterations 300] [--variants baseline crop128 ...] [--threads 1]

Every variant starts from the shipped model (``width1``: its Net2Net widening, which computes the same function;
``single_style``: its Starry Night parameters alone, a one-style network), trains the same number of iterations with
the same seed and photos, and is judged on the shipped objective (whatever it trained on): the ratio of its
perceptual loss to that of 100 L-BFGS iterations at 256 px on the 4 held-out photos, with the L-BFGS losses of
``bench/results/realtime_quality_256.json`` reused (they do not depend on the network). The baseline is the shipped
recipe (256-px crops, width 0.5, lr 3e-4, style parameters x10) with the campaign's schedule (linear decay over the
second half) in bf16 where the CPU runs it natively. Runs are kept in ``--work`` and reused when rerun.
``vgg16`` trains on Johnson's loss network instead (Caffe VGG16, same layer names) with content and style weights
calibrated on training photos so that the shipped network's outputs get the same content and style terms as on the
shipped objective; it is judged on its own objective too (its own 100 L-BFGS losses, computed once and kept in
``--work``), where the shipped network is also judged for comparison.
Writes ``bench/results/realtime_levers_cpu.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import cli  # noqa: E402
import evaluation  # noqa: E402
import losses  # noqa: E402
import realtime  # noqa: E402
import runtime  # noqa: E402
import torch  # noqa: E402
import weights  # noqa: E402
from benchlib import load_average, write_json  # noqa: E402
from imaging import load_image, split_held_out  # noqa: E402

# what each variant changes in the baseline options (the lever), and the model it starts from
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "crop128": {"image_size": 128},
    "crop192": {"image_size": 192},
    "width1": {"width": 1.0},
    "style_size512": {"style_size": 512},
    "lr_constant": {"lr_decay_iterations": 0},
    "lr_1e-3": {"learning_rate": 1e-3},
    "single_style": {},
    "vgg16": {"loss_network": "vgg16", "vgg_weights": "imagenet"},  # + calibrated weights (calibrated_vgg16)
}
SINGLE_STYLE = "starry_night"


def single_style_start(shipped: torch.nn.Module, options: realtime.RealtimeOptions, folder: Path) -> Path:
    """The shipped network with only ``SINGLE_STYLE``'s gamma/beta, exported to ``folder`` (a warm start)."""
    index = shipped.style_names.index(SINGLE_STYLE)
    one = realtime.TransformerNet(n_styles=1, width=shipped.width, style_names=[SINGLE_STYLE])
    one.load_state_dict({k: v[index:index + 1] if k.endswith((".gamma", ".beta")) else v
                         for k, v in weights.load_verified_weights("realtime_4styles.pth").items()})
    style = {SINGLE_STYLE: realtime.shipped_style_images(shipped)[SINGLE_STYLE]}
    trained = {k: shipped.recipe[k] for k in ("iterations", "wall_seconds")}
    return realtime.export_model(one, "start_single", options, style, trained, assets_dir=folder)


def calibrated_vgg16(shipped: torch.nn.Module, objective: realtime.RealtimeOptions, photos: list[Path],
                     styles: dict) -> dict:
    """VARIANTS["vgg16"] plus the content and style weights that give the shipped network's outputs on ``photos``
    (256 px, every style) the same summed content and style terms as ``objective`` (the TV term does not change)."""
    vgg16 = dataclasses.replace(objective, **VARIANTS["vgg16"])
    sums = {}
    for name, options in (("vgg19", objective), ("vgg16", vgg16)):
        style_images = [load_image(path, options.style_size) for path in styles.values()]
        loss, terms = losses.PerceptualLoss(options, style_images), {"content": 0.0, "style": 0.0}
        for photo in photos:
            image = load_image(photo, 256)
            image = image[..., : image.shape[-2] // 4 * 4, : image.shape[-1] // 4 * 4]
            for index, style in enumerate(styles):
                one_hot = torch.nn.functional.one_hot(torch.tensor([index]), len(styles)).float()
                with torch.no_grad():
                    values = loss(realtime.stylize(image, shipped, shipped.style_names.index(style)), image, one_hot)
                for term in terms:
                    terms[term] += float(values[term])
        sums[name] = terms
    scale = {term: sums["vgg19"][term] / sums["vgg16"][term] for term in ("content", "style")}
    return {**VARIANTS["vgg16"], "content_weight": float(f"{objective.content_weight * scale['content']:.4g}"),
            "style_weight": float(f"{objective.style_weight * scale['style']:.4g}")}


def own_reference(model: torch.nn.Module, photos: list[Path], objective: realtime.RealtimeOptions, styles: dict,
                  path: Path) -> dict:
    """{(photo, style): loss of 100 L-BFGS iterations} on ``objective``, computed once and kept in ``path``."""
    if not path.exists() or json.loads(path.read_text())["objective"] != objective.objective():
        rows = evaluation.compare_with_optimisation(model, photos, objective, styles, 256, 100, progress=False)
        path.write_text(json.dumps({"objective": objective.objective(),
                                    "losses": [[r["photo"], r["style"], r["optimised_loss"]] for r in rows]}))
    return {(photo, style): loss for photo, style, loss in json.loads(path.read_text())["losses"]}


def judge(model: torch.nn.Module, photos: list[Path], objective: realtime.RealtimeOptions, styles: dict,
          reference: dict) -> dict:
    rows = evaluation.compare_with_optimisation(model, photos, objective, styles, 256, 100, progress=False,
                                                optimised_losses=reference)
    ratios = {f"{r['photo']}/{r['style']}": round(r["ratio"], 4) for r in rows}
    return {"mean_ratio": round(sum(ratios.values()) / len(ratios), 4), "max_ratio": max(ratios.values()),
            "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("runs") / "realtime_levers")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "realtime_levers_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shipped = realtime.load_style_model("realtime_4styles", device="cpu", precision="fp32")
    recipe = realtime.model_recipe(shipped)
    objective = realtime.model_options(shipped)
    amp = "bf16" if runtime.cpu_bf16_native() else False
    base = dataclasses.replace(objective, iterations=args.iterations, lr_decay_iterations=args.iterations // 2,
                               amp=amp, sample_every=args.iterations, export_every=None, checkpoint_minutes=None)
    reference = cli.reference_losses(str(ROOT / "bench" / "results" / "realtime_quality_256.json"),
                                     objective.objective(), 256, 100)
    photos = [args.photos / name for name in recipe["held_out"][:4]]
    all_styles = realtime.shipped_style_images(shipped)
    results = {"device": runtime.device_description(torch.device("cpu")), "threads": args.threads,
               "iterations": args.iterations, "amp": amp or "fp32", "baseline_options": dataclasses.asdict(base),
               "shipped": judge(shipped, photos, objective, all_styles, reference), "variants": {}}
    if args.output.exists():  # keep the variants measured earlier
        results["variants"] = json.loads(args.output.read_text()).get("variants", {})
    for name in args.variants:
        changes = VARIANTS[name]
        if name == "vgg16":
            training_photos = split_held_out(args.photos, names=recipe["held_out"])[0][:8]
            changes = calibrated_vgg16(shipped, objective, training_photos, all_styles)
        options = dataclasses.replace(base, **changes)
        folder = args.work / name
        styles = {SINGLE_STYLE: all_styles[SINGLE_STYLE]} if name == "single_style" else all_styles
        start = single_style_start(shipped, options, folder / "start") if name == "single_style" else "realtime_4styles"
        load_start, started = load_average(), time.perf_counter()
        realtime.train_realtime(args.photos, styles, folder / "run", options, export_name=name,
                                assets_dir=folder / "export", device="cpu", progress=False, init_from=start)
        seconds = time.perf_counter() - started
        model = realtime.load_style_model(folder / "export" / f"{name}.pth", device="cpu", precision="fp32")
        row = {"changes": changes, "seconds": round(seconds, 1), "load_average_1min": load_start,
               **judge(model, photos, objective, styles, reference)}
        if name == "vgg16":  # on its own objective, where the shipped network is judged too
            own = dataclasses.replace(objective, **changes)
            own_losses = own_reference(model, photos, own, styles, folder / "lbfgs_reference.json")
            row["own_objective"] = judge(model, photos, own, styles, own_losses)
            row["shipped_on_own_objective"] = judge(shipped, photos, own, styles, own_losses)
        if name == "single_style":  # the multi-style networks on the same style, for the comparison
            row["shipped_same_style"] = judge(shipped, photos, objective, styles, reference)["mean_ratio"]
        results["variants"][name] = row
        print(name, json.dumps({k: v for k, v in row.items() if k != "ratios"}), flush=True)
        write_json(results, args.output, indent=1, default=str)


if __name__ == "__main__":
    main()
