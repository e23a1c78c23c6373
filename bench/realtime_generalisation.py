"""Is the real-time network's gap to L-BFGS one of generalisation? Its ratio on training photos vs held-out ones.

    python bench/realtime_generalisation.py [--count 4] [--threads 1]

The shipped network's loss over that of 100 L-BFGS iterations on the same objective at 256 px (as the campaign's
target measures it), on ``--count`` photos it trained on (the first of its training split, sorted) x its 4 styles.
The held-out figures are those of ``bench/results/realtime_quality_256.json``. If the training photos' ratio is as high
as the held-out photos', the gap is not one of too few training photos (260 here, 83k in COCO) but of what the network
reaches on the photos it saw. Writes ``bench/results/realtime_generalisation_cpu.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "code"))

import evaluation  # noqa: E402
import realtime  # noqa: E402
import runtime  # noqa: E402
import torch  # noqa: E402
from benchlib import load_average, utc_timestamp, write_json  # noqa: E402
from imaging import split_held_out  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "realtime_generalisation_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = realtime.load_style_model("realtime_4styles", device="cpu", precision="fp32")
    recipe = realtime.model_recipe(model)
    objective = realtime.model_options(model)
    training = split_held_out(args.photos, names=recipe["held_out"])[0][: args.count]
    load_start, started = load_average(), time.perf_counter()
    rows = evaluation.compare_with_optimisation(model, training, objective, realtime.shipped_style_images(model), 256,
                                                100, progress=False)
    held_out = json.loads((ROOT / "bench" / "results" / "realtime_quality_256.json").read_text())
    ratios = {f"{r['photo']}/{r['style']}": round(r["ratio"], 4) for r in rows}
    result = {"device": runtime.device_description(torch.device("cpu")), "threads": args.threads,
              "load_average_1min": load_start, "seconds": round(time.perf_counter() - started, 1),
              "time": utc_timestamp(), "objective": objective.objective(),
              "training_photos": {"mean_ratio": round(sum(ratios.values()) / len(ratios), 4),
                                  "max_ratio": max(ratios.values()), "ratios": ratios},
              "held_out_photos": {"mean_ratio": round(held_out["mean_ratio"], 4),
                                  "max_ratio": round(held_out["max_ratio"], 4)}}
    write_json(result, args.output, indent=1)
    print(json.dumps({k: result[k] for k in ("training_photos", "held_out_photos")}))


if __name__ == "__main__":
    main()
