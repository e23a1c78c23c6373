"""Ship an exported transform network to assets/ with its held-out comparison in the recipe.

    python code/cli.py realtime compare --model EXPORT_DIR/realtime_4styles.pth --size 256 \\
        --reference bench/results/realtime_quality_256.json --output COMPARE.json
    python bench/ship_realtime.py EXPORT_DIR/realtime_4styles.pth COMPARE.json [--to assets]

The export is loaded SHA-256-checked against the manifest beside it and re-stored in ``--to`` under the same name, its
recipe extended with ``heldout_ratio_256`` (mean and worst ratio of the network's perceptual loss to that of 100 L-BFGS
iterations, from COMPARE.json). It refuses a comparison made of another model or at another size, and one that does
not beat the shipped model on both the mean and the worst ratio (docs/training_campaign.md: ship only improvements).
The comparison then replaces ``--shipped`` (the earlier numbers kept under ``previous``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import torch  # noqa: E402
import weights  # noqa: E402
from benchlib import write_json  # noqa: E402


def ratios(compare: dict) -> dict:
    return {"mean": round(compare["mean_ratio"], 4), "worst": round(compare["max_ratio"], 4),
            "size": compare["size"], "lbfgs_iterations": compare["lbfgs_iterations"], "pairs": len(compare["rows"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="the exported .pth (beside its MANIFEST.json)")
    parser.add_argument("compare", type=Path, help="the JSON `cli.py realtime compare --output` wrote for it")
    parser.add_argument("--to", type=Path, default=weights.ASSETS_DIR, help="assets folder (default: assets/)")
    parser.add_argument("--shipped", type=Path, default=ROOT / "bench" / "results" / "realtime_quality_256.json",
                        help="the shipped model's comparison on the same objective")
    args = parser.parse_args()
    compare, shipped = json.loads(args.compare.read_text()), json.loads(args.shipped.read_text())
    if Path(compare["model"]).resolve() != args.export.resolve():
        parser.error(f"{args.compare} compares {compare['model']}, not {args.export}")
    if any(compare.get(k) != shipped.get(k) for k in ("size", "lbfgs_iterations", "objective")):
        parser.error(f"{args.compare} and {args.shipped} are not the same comparison (size, iterations, objective)")
    new, old = ratios(compare), ratios(shipped)
    if not (new["mean"] < old["mean"] and new["worst"] < old["worst"]):
        parser.error(f"not an improvement: mean {new['mean']} / worst {new['worst']} against the shipped "
                     f"{old['mean']} / {old['worst']}")
    name = args.export.name
    recipe = dict(weights.read_manifest(args.export.parent / "MANIFEST.json")[name]["recipe"])
    recipe["heldout_ratio_256"] = new
    state = weights.load_verified_weights(name, assets_dir=args.export.parent, dtype=torch.float16)
    print(f"shipped {weights.save_fp16_weights(state, name, recipe, assets_dir=args.to)}: mean {new['mean']} "
          f"(was {old['mean']}), worst {new['worst']} (was {old['worst']})")
    # the new model's comparison becomes the shipped one (the next stage is judged against it)
    write_json({**compare, "model": Path(name).stem, "lbfgs_reused_from": args.shipped.name,
                "previous": {k: shipped[k] for k in ("iterations_trained", "mean_ratio", "max_ratio")}}, args.shipped)
    print(f"{args.shipped} now holds its comparison")


if __name__ == "__main__":
    main()
