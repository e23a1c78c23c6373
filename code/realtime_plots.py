"""Figures for real-time style transfer: loss curves, sample grids, the network vs. L-BFGS comparison."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import nntools
from imaging import load_image, show_images


def plot_losses(exp: nntools.Experiment, title: str = "Real-time style transfer: training losses") -> Any:
    """Weighted-loss terms against the iteration (training, every ``log_every``) and held-out totals per epoch."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    records = exp.iteration_history or exp.history
    for name in ("total", "content", "style"):
        points = [(r["iteration"], r[name]) for r in records if name in r]
        if points:
            axes[0].plot(*zip(*points), label=f"train {name}", marker="o" if len(points) < 30 else None)
    val = [(r["iteration"], r["val"]["total"]) for r in exp.history if isinstance(r.get("val"), dict)]
    if val:
        axes[0].plot(*zip(*val), "k--", marker="s", label="held-out total (all styles)")
    axes[0].set_yscale("log")
    axes[0].set_title("perceptual loss (log scale)")
    tv = [(r["iteration"], r["tv"]) for r in records if "tv" in r]
    if tv:
        axes[1].plot(*zip(*tv), label="train TV (mean squared pixel difference)", color="tab:red")
    axes[1].set_title("total-variation term")
    for axis in axes:
        axis.set_xlabel("iteration")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{title} (iteration {exp.iteration}, epoch {exp.epoch})")
    figure.tight_layout()
    return figure


def show_sample_grid(path: str | Path, style_names: Sequence[str], caption: str | None = None) -> Any:
    """A sample grid saved during training (rows: held-out photos; columns: photo, then each style)."""
    grid = load_image(path)
    columns = ", ".join(["photo", *style_names])
    return show_images([grid], [f"{Path(path).stem}: {columns}"], suptitle="Held-out photos during training",
                       caption=caption or f"Columns: {columns}. These photos were never trained on.", panel_size=9)


def show_comparison(rows: Sequence[dict[str, Any]], caption: str | None = None) -> Any:
    """Network output vs. L-BFGS optimum of the same loss, side by side, with their losses in the titles."""
    images, titles = [], []
    for row in rows:
        images += [row["network_image"], row["optimised_image"]]
        titles += [f"{row['photo'][:18]} / {row['style'][:14]}\nnetwork: loss {row['network_loss']:.3g}",
                   f"L-BFGS {row.get('iterations', len(row['trace']))} it.: loss {row['optimised_loss']:.3g}\nratio {row['ratio']:.2f}"]
    return show_images(images, titles, columns=4, panel_size=3.2,
                       suptitle=f"One forward pass vs. {rows[0].get('iterations', 100) if rows else 100} L-BFGS iterations on the same perceptual loss",
                       caption=caption or "Left of each pair: the trained network; right: Gatys-style optimisation "
                       "of the same loss (same layers and weights), started from the photo. Ratio = network / L-BFGS.")


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the comparison, with the mean and worst ratio."""
    lines = ["| photo | style | network loss | L-BFGS loss | ratio |", "|---|---|---|---|---|"]
    lines += [f"| {r['photo']} | {r['style']} | {r['network_loss']:.4g} | {r['optimised_loss']:.4g} | {r['ratio']:.2f} |" for r in rows]
    ratios = [r["ratio"] for r in rows]
    if ratios:
        lines.append(f"| **mean** | | | | **{sum(ratios) / len(ratios):.2f}** (worst {max(ratios):.2f}) |")
    return "\n".join(lines)
