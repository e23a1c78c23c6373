"""Labelled figures, for the training notebooks and the report.

* Gatys et al.: one photo in several styles (Gatys et al. 2016, Fig. 2), blended
styles, original colours (Gatys et al. 2016b), high resolution through multi-scale, snapshots and loss curves.

Each function runs the optimisation through :class:`gatys.StyleTransfer`, returns the results and a labelled
matplotlib figure, and saves the figure under ``output_dir`` when one is given.
* Real-time style transfer: loss curves, sample grids, the network vs. L-BFGS comparison.
* CycleGAN (Zhu et al. 2017): loss curves, per-epoch sample grids, the style evidence.
* :func:`plot_history`: any Experiment's history of losses."""
from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

try:  # tqdm is optional: without it there is simply no progress bar.
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # pragma: no cover - depends on the environment
    _tqdm = None

import nntools
from gatys import GatysOptions, GatysResult, StyleTransfer
from imaging import load_image, save_figure, show_images
from training import flatten_numeric


def _output_path(output_dir: str | Path | None, name: str) -> Path | None:
    """``output_dir / name``, or None (do not save) without an output folder."""
    return None if output_dir is None else Path(output_dir) / name


def _gatys_settings(options: GatysOptions) -> str:
    sizes = " -> ".join(str(s) for s in options.sizes())
    return (f"{sum(options.iterations_per_scale())} {options.optimizer.upper()} iterations at {sizes} px, "
            f"alpha {options.content_weight:g}, beta {options.style_weight:.3g}, init {options.init}")


def one_photo_many_styles(
    content_path: str | Path, style_paths: Sequence[str | Path], options: GatysOptions,
    output_dir: str | Path | None = None,
) -> tuple[list[GatysResult], plt.Figure]:
    """The paper's classic figure: the photo, then each style (thumbnail above) and its result."""
    size = options.sizes()[-1]
    content = load_image(content_path, size)
    transfer = StyleTransfer(options)
    styles = [load_image(path, size) for path in style_paths]
    results = [transfer.run(content, style) for style in styles]
    figure, axes = plt.subplots(2, len(styles) + 1, figsize=(3.2 * (len(styles) + 1), 5.6), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    axes[1, 0].imshow(content[0].permute(1, 2, 0).numpy())
    axes[1, 0].set_title("content", fontsize=10)
    for column, (path, style, result) in enumerate(zip(style_paths, styles, results), start=1):
        axes[0, column].imshow(style[0].permute(1, 2, 0).numpy())
        axes[0, column].set_title(Path(path).stem.replace("_", " "), fontsize=9)
        axes[1, column].imshow(result.image[0].permute(1, 2, 0).numpy())
        axes[1, column].set_title(f"{result.seconds:.0f} s, loss {result.final_loss:.3g}", fontsize=9)
    figure.suptitle("One photo in several styles (Gatys et al. 2016, Fig. 2)")
    figure.text(0.5, 0.01, _gatys_settings(options) + f"; device {results[0].device}", ha="center", fontsize=9)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return results, save_figure(figure, _output_path(output_dir, "styles.png"))


def blended_styles(
    content_path: str | Path, style_a: str | Path, style_b: str | Path, options: GatysOptions,
    fractions: Sequence[float] = (1.0, 0.75, 0.5, 0.25, 0.0), output_dir: str | Path | None = None,
) -> tuple[list[GatysResult], plt.Figure]:
    """Blend two styles: Gram targets w G_a + (1 - w) G_b for each fraction w of style a."""
    size = options.sizes()[-1]
    content, a, b = (load_image(p, size) for p in (content_path, style_a, style_b))
    transfer = StyleTransfer(options)
    results = []
    for fraction in fractions:
        transfer.options = replace(options, style_blend_weights=[fraction, 1.0 - fraction])
        results.append(transfer.run(content, [a, b]))
    transfer.options = options
    name_a, name_b = Path(style_a).stem.replace("_", " "), Path(style_b).stem.replace("_", " ")
    figure = show_images(
        [r.image for r in results], [f"{f:.0%} {name_a}\n{1 - f:.0%} {name_b}" for f in fractions],
        suptitle="Blended styles: weighted Gram targets", caption=_gatys_settings(options), panel_size=3.0,
    )
    return results, save_figure(figure, _output_path(output_dir, "blends.png"))


def original_colours(
    content_path: str | Path, style_path: str | Path, options: GatysOptions, output_dir: str | Path | None = None,
) -> tuple[list[GatysResult], plt.Figure]:
    """Style transfer that keeps the photo's colours: none vs luminance-only vs colour matching (Gatys et al. 2016b)."""
    size = options.sizes()[-1]
    content, style = load_image(content_path, size), load_image(style_path, size)
    transfer = StyleTransfer(options)
    results = []
    modes = (None, "luminance", "color_match")
    for mode in modes:
        transfer.options = replace(options, preserve_colors=mode)
        results.append(transfer.run(content, style))
    transfer.options = options
    titles = ["content", "style", "style colours", "luminance-only transfer", "colour-matched style"]
    figure = show_images([content, style] + [r.image for r in results], titles, panel_size=3.0,
                         suptitle="Keeping the original colours (Gatys, Bethge, Hertzmann & Shechtman 2016)",
                         caption=_gatys_settings(options))
    return results, save_figure(figure, _output_path(output_dir, "colours.png"))


def multiscale_versus_single(
    content_path: str | Path, style_path: str | Path, options: GatysOptions,
    scales: Sequence[int], iterations: Sequence[int], output_dir: str | Path | None = None,
) -> tuple[dict[str, GatysResult], plt.Figure]:
    """High resolution: coarse-to-fine (optimise small, upsample, refine) vs the same number of iterations at full size.

    Losses are compared at the final size: the multi-scale curve's last segment is at full resolution.
    """
    final = scales[-1]
    content, style = load_image(content_path, final), load_image(style_path, final)
    multi = StyleTransfer(replace(options, scales=tuple(scales), iterations=tuple(iterations))).run(content, style)
    single = StyleTransfer(replace(options, scales=None, size=final, iterations=sum(iterations))).run(content, style)
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1.2, 1, 1]})
    last = iterations[-1]
    for label, result in (("multi-scale " + " -> ".join(map(str, scales)), multi), (f"single scale {final} px", single)):
        totals = [h["total"] for h in result.history[-last:]]
        axes[0].plot(range(sum(iterations) - last + 1, sum(iterations) + 1), totals, label=f"{label} ({result.seconds:.0f} s)")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel(f"total loss at {final} px")
    axes[0].set_title(f"Last {last} iterations at full size")
    axes[0].legend()
    for axis, (title, result) in zip(axes[1:], (("multi-scale", multi), ("single scale", single))):
        axis.imshow(result.image[0].permute(1, 2, 0).numpy())
        axis.set_title(f"{title}: loss {result.final_loss:.3g}, {result.seconds:.0f} s", fontsize=10)
        axis.axis("off")
    figure.suptitle(f"High resolution through multi-scale: {sum(iterations)} iterations each, final size {final} px")
    figure.tight_layout()
    return {"multi": multi, "single": single}, save_figure(figure, _output_path(output_dir, "multiscale.png"))


def snapshots(
    content_path: str | Path, style_path: str | Path, options: GatysOptions, every: int,
    output_dir: str | Path | None = None,
) -> tuple[GatysResult, plt.Figure]:
    """The image every ``every`` iterations (through the snapshot callback), to watch the optimisation progress."""
    size = options.sizes()[-1]
    content, style = load_image(content_path, size), load_image(style_path, size)
    frames: list[tuple[int, torch.Tensor, float]] = []
    result = StyleTransfer(replace(options, snapshot_every=every)).run(
        content, style, callback=lambda i, image, losses: frames.append((i, image, losses["total"])))
    figure = show_images([content] + [f[1] for f in frames], ["start (content)"] + [f"iteration {i}\nloss {l:.3g}" for i, _, l in frames],
                         suptitle="Snapshots of the optimisation", caption=_gatys_settings(options), panel_size=2.6)
    return result, save_figure(figure, _output_path(output_dir, "snapshots.png"))


def loss_curves(results: dict[str, GatysResult], output_dir: str | Path | None = None) -> plt.Figure:
    """Content, weighted style and total loss against iterations, one panel per run."""
    figure, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.6), squeeze=False)
    for axis, (name, result) in zip(axes[0], results.items()):
        alpha, beta = result.options["content_weight"], result.options["style_weight"]
        steps = range(1, len(result.history) + 1)
        axis.plot(steps, [h["total"] for h in result.history], label="total", color="black")
        axis.plot(steps, [alpha * h["content"] for h in result.history], label="alpha x content")
        axis.plot(steps, [beta * h["style"] for h in result.history], label="beta x style")
        axis.set_yscale("symlog", linthresh=1.0)
        axis.set_xlabel("iteration")
        axis.set_title(name.replace("_", " "), fontsize=10)
        axis.legend(fontsize=8)
    axes[0, 0].set_ylabel("loss")
    figure.suptitle("Loss terms during the optimisation (Gatys eq. 7)")
    figure.tight_layout()
    return save_figure(figure, _output_path(output_dir, "losses.png"))


def plot_realtime_losses(exp: nntools.Experiment, title: str = "Real-time style transfer: training losses") -> Any:
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


def show_realtime_sample_grid(path: str | Path, style_names: Sequence[str], caption: str | None = None) -> Any:
    """A sample grid saved during training (rows: held-out photos; columns: photo, then each style)."""
    grid = load_image(path)
    columns = ", ".join(["photo", *style_names])
    return show_images([grid], [f"{Path(path).stem}: {columns}"], suptitle="Held-out photos during training",
                       caption=caption or f"Columns: {columns}. These photos were never trained on.", panel_size=9)


def show_realtime_comparison(rows: Sequence[dict[str, Any]], caption: str | None = None) -> Any:
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


GENERATOR_LOSSES = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B")


DISCRIMINATOR_LOSSES = ("D_A", "D_B")


def plot_cyclegan_losses(exp: nntools.Experiment, title: str = "CycleGAN training losses") -> Any:
    """Generator-side and discriminator-side losses against the iteration (``iteration_history``, else per epoch)."""
    import matplotlib.pyplot as plt

    records = exp.iteration_history or exp.history
    x_name = "iteration" if exp.iteration_history else "epoch"
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    for axis, names, label in ((axes[0], GENERATOR_LOSSES, "generators (weighted terms)"),
                               (axes[1], DISCRIMINATOR_LOSSES, "discriminators (halved LSGAN)")):
        for name in names:
            points = [(r[x_name], r[name]) for r in records if name in r]
            if not points:
                continue
            xs, ys = map(list, zip(*points))
            window = max(1, len(ys) // 25)  # moving mean: single-iteration GAN losses are noisy
            if window > 1:
                ys = [sum(ys[max(0, i - window + 1):i + 1]) / len(ys[max(0, i - window + 1):i + 1])
                      for i in range(len(ys))]
            label = name if window == 1 else f"{name} (mean of {window} logs)"
            axis.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None)
        axis.set_xlabel(x_name)
        axis.set_ylabel("loss")
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"{title} (epoch {exp.epoch}, iteration {exp.iteration})")
    figure.tight_layout()
    return figure


def show_cyclegan_samples(exp: nntools.Experiment, caption: str | None = None) -> Any:
    """The last training batch: real A | fake B | rec A (top) and real B | fake A | rec B (bottom)."""
    visuals = exp.model.visuals()
    if not visuals:  # no batch seen yet in this process
        return None
    order = ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
    titles = ["real photo (A)", "G_A(photo): fake painting", "G_B(G_A(photo)): reconstruction",
              "real painting (B)", "G_B(painting): fake photo", "G_A(G_B(painting)): reconstruction"]
    return show_images([visuals[name][:1] for name in order], titles, columns=3, panel_size=2.6,
                       suptitle=f"Samples after epoch {exp.epoch} (iteration {exp.iteration})",
                       caption=caption or "Training crops of the last batch; the cycle loss compares columns 1 and 3.")


def cyclegan_progress_callback(exp: nntools.Experiment) -> None:
    """``plot=`` callback for :func:`cyclegan.train_cyclegan`: losses and samples after every epoch."""
    import matplotlib.pyplot as plt

    plot_cyclegan_losses(exp)
    show_cyclegan_samples(exp)
    plt.show()


def plot_evidence(results: dict[str, Any]) -> Any:
    """Bar chart of the relative Gram distances of each image group to the photo set and to the painting set."""
    import matplotlib.pyplot as plt

    names = list(results["style"])
    to_photos = [results["style"][n]["to_photos"] for n in names]
    to_paintings = [results["style"][n]["to_paintings"] for n in names]
    positions = np.arange(len(names))
    figure, axis = plt.subplots(figsize=(11, 4.5))
    axis.bar(positions - 0.2, to_photos, 0.4, label="distance to photo set")
    axis.bar(positions + 0.2, to_paintings, 0.4, label="distance to painting set")
    axis.set_xticks(positions, [n.replace(": ", ":\n") for n in names], fontsize=8)
    axis.set_ylabel("mean relative Gram distance")
    axis.set_title("Style statistic (VGG19 relu1_1..relu4_1 Gram matrices): where do the images sit?")
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    figure.text(0.5, -0.02, "Lower = closer. ||G(x) - mean G(set)||_F / ||mean G(set)||_F averaged over layers and "
                "images; sets = training photos / paintings. Generated paintings should move toward the painting set.",
                ha="center", fontsize=8, wrap=True)
    figure.tight_layout()
    return figure


def plot_history(history: list[dict[str, Any]], ax: Any = None, keys: Iterable[str] | None = None,
                 title: str = "Training history", logy: bool = False) -> Any:
    """Plot every numeric series of ``history`` against the epoch; returns the matplotlib axes.

    Nested entries are named ``val/loss`` etc.; ``keys`` selects series; identical series
    (e.g. a supervised ``train`` summary equal to ``loss``) are drawn once.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    epochs = [entry.get("epoch", i + 1) for i, entry in enumerate(history)]
    series: dict[str, list[float]] = {}
    for entry in history:
        for name, value in flatten_numeric(entry).items():
            series.setdefault(name, [math.nan] * len(epochs))
    for i, entry in enumerate(history):
        for name, value in flatten_numeric(entry).items():
            series[name][i] = value
    wanted = list(keys) if keys is not None else list(series)
    drawn: list[list[float]] = []
    for name in wanted:
        values = series.get(name)
        if values is None or values in drawn:
            continue
        drawn.append(values)
        ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None, label=name)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if logy:
        ax.set_yscale("log")
    if drawn:
        ax.legend()
    ax.grid(alpha=0.3)
    return ax


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, digits: int | None = None,
              columns: Sequence[str] | None = None) -> Path:
    """Rows (dicts) to CSV, with ``columns`` (default: every key, in order of first appearance); floats rounded to
    ``digits`` significant digits when given. The folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(columns or dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (float(f"{v:.{digits}g}") if digits and isinstance(v, float) else v)
                             for k, v in row.items()})
    return path
