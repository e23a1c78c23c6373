"""The real-time campaign's metric against the hours spent: ``docs/campaign_realtime.png`` (issue #12).

    python bench/plot_realtime_campaign.py

Left: the campaign's models (``bench/results/realtime_campaign.json``): the ratio of the network's loss to that of 100
L-BFGS iterations, mean and worst over 4 held-out photos x 4 styles, against the wall-hours of training behind each.
Right: the short lever runs (``bench/results/realtime_levers_cpu.json``: 300 iterations each from the shipped model,
judged at 256 px) beside the shipped model. Dashed: the targets of issue #12 (mean <= 1.3, worst <= 2).
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
METRICS = (("mean_ratio", "mean", 1.3, "tab:blue"), ("max_ratio", "worst", 2.0, "tab:red"))


def main() -> None:
    campaign = json.loads((RESULTS / "realtime_campaign.json").read_text())["points"]
    levers = json.loads((RESULTS / "realtime_levers_cpu.json").read_text())
    figure, (history, bars) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained",
                                           gridspec_kw={"width_ratios": [1.1, 1]})
    for key, label, target, colour in METRICS:
        for size, marker, style in ((128, "s", ":"), (256, "o", "-")):
            points = [p for p in campaign if p["size"] == size]
            history.plot([p["hours"] for p in points], [p[key] for p in points], marker=marker, linestyle=style,
                         color=colour, label=f"{label}, judged at {size} px")
            for p in points:
                if not p["shipped"]:
                    history.annotate("not shipped", (p["hours"], p[key]), fontsize=7, xytext=(-20, 6),
                                     textcoords="offset points")
        history.axhline(target, color=colour, linestyle="--", linewidth=0.8, label=f"target ({label}) {target}")
    history.set(xlabel="wall-hours of training behind the model (1-2 CPU threads)", ylabel="network loss / L-BFGS loss",
                title="Campaign models")
    history.legend(fontsize=7, ncol=2)
    names = ["shipped", *levers["variants"]]
    rows = [levers["shipped"], *levers["variants"].values()]
    positions = range(len(names))
    for offset, (key, label, target, colour) in zip((-0.2, 0.2), METRICS):
        bars.barh([y + offset for y in positions], [r[key] for r in rows], height=0.4, color=colour, label=label)
        bars.axvline(target, color=colour, linestyle="--", linewidth=0.8)
    labels = [n.replace("_", " ") + (" (Starry Night only)" if n == "single_style" else "") for n in names]
    bars.set_yticks(list(positions), labels)
    bars.invert_yaxis()
    bars.set(xlabel="network loss / L-BFGS loss (256 px)", xlim=(1.0, 3.0),
             title=f"Levers: {levers['iterations']} iterations from the shipped model")
    bars.legend(fontsize=8, loc="upper right")
    figure.suptitle("Real-time network on the CPU campaign: loss over that of 100 L-BFGS iterations, "
                    "4 held-out photos x 4 styles", fontsize=10)
    out = ROOT / "docs" / "campaign_realtime.png"
    figure.savefig(out, dpi=130)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
