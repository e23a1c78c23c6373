"""Labelled figures: the demo's four sections and the figures of the training notebooks and the report.

* The demo (what ``demo.ipynb`` calls): :func:`gatys_demo`, :func:`realtime_demo`, :func:`cyclegan_demo`,
  :func:`adain_demo` run each method on the shipped images with :class:`DemoSettings` sized for the device (full
  quality on a GPU; on a CPU, sizes and iterations that finish the whole demo within about two minutes on 2 cores)
  and return a figure (saved under ``output_dir``) and the numbers they measured.
* Gatys et al.: one photo in several styles (Gatys et al. 2016, Fig. 2), blended styles, original colours (Gatys et
  al. 2016b), high resolution through multi-scale, snapshots and loss curves; each runs the optimisation through
  :class:`gatys.StyleTransfer` and returns the results with the figure.
* Real-time style transfer: loss curves, sample grids, the network vs. L-BFGS comparison.
* CycleGAN (Zhu et al. 2017): loss curves, per-epoch sample grids, the style evidence.
* :func:`plot_history`: any Experiment's history of losses; :func:`write_csv`: the numbers behind a figure."""
from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import matplotlib.pyplot as plt
import numpy as np
import torch

try:  # tqdm is optional: without it there is simply no progress bar.
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # pragma: no cover - depends on the environment
    _tqdm = None

import cyclegan
import nntools
import realtime
import runtime
from cyclegan import translate
from gatys import GatysOptions, GatysResult, StyleTransfer
from imaging import load_image, save_figure, save_image, show_images
from runtime import free_cpu_threads, pick_device
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
    if any(row["optimised_image"] is None for row in rows):
        raise ValueError("rows whose L-BFGS losses were reused (optimised_losses) have no L-BFGS image to show; "
                         "compare without optimised_losses to plot them")
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


CYCLEGAN_PANELS = (  # (title, keys, target of issue #12 and its direction)
    ("cycle L1, held out (lower is better)", ("cycle_l1_photo", "cycle_l1_painting"), 0.08),
    ("probe: generated images called their domain", ("generated_paintings_called_paintings",
                                                      "generated_photos_called_photos"), 0.7),
    ("checkerboard index (real images ~1)", ("checkerboard_generated_paintings", "checkerboard_generated_photos",
                                             "checkerboard_real_paintings"), 1.15),
)


def plot_cyclegan_metrics(rows: Sequence[Mapping[str, Any]], x: str = "iteration", xlabel: str = "iteration",
                          title: str = "CycleGAN held-out metrics over training") -> plt.Figure:
    """The numbers of :func:`evaluation.evaluate_cyclegan` (one row per checkpoint) against ``x``, one panel per
    metric, with the target as a dotted line."""
    fig, axes = plt.subplots(1, len(CYCLEGAN_PANELS), figsize=(5 * len(CYCLEGAN_PANELS), 3.6))
    xs = [row[x] for row in rows]
    for ax, (panel, keys, target) in zip(axes, CYCLEGAN_PANELS):
        for key in keys:
            if all(key in row for row in rows):
                ax.plot(xs, [row[key] for row in rows], marker="o", label=key.replace("_", " "),
                        linestyle="--" if key.startswith("checkerboard_real") else "-")
        ax.axhline(target, color="grey", linestyle=":", label=f"target {target}")
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


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


# ------------------------------------------------------------------------------------------------------------ the demo
ASSETS = Path(__file__).resolve().parents[1] / "assets"


T = TypeVar("T")


@dataclass
class DemoSettings:
    """Sizes and iteration counts per device (``for_device`` picks them)."""

    device: str
    gatys_scales: tuple[int, ...]
    gatys_iterations: tuple[int, ...]
    gatys_style_weight: float
    realtime_size: int  # 384 everywhere: where the strokes read at display size (bench/realtime_stroke_size.py)
    cyclegan_size: int
    cpu_threads: int
    adain_size: int = 384

    @classmethod
    def for_device(cls, device: str | torch.device | None = None) -> "DemoSettings":
        """GPU: full quality. CPU: 256 px and 100 L-BFGS iterations, on the cores other jobs leave free."""
        device = pick_device(device)
        if device.type == "cpu":
            threads = free_cpu_threads()
            torch.set_num_threads(threads)
            # beta 3e6 at 256 px balances like the default 1e7 at 512 px (content loss grows with the pixel count)
            return cls(str(device), (256,), (100,), 3e6, 384, 256, threads, 384)
        return cls(str(device), (256, 512), (150, 150), 1e7, 384, 512, torch.get_num_threads(), 1024)


def timed(device: torch.device, call: Callable[..., T], *args: Any) -> tuple[T, float]:
    """(``call(*args)``, its wall time in seconds), the device synchronised before and after."""
    runtime.synchronize(device)
    start = time.perf_counter()
    result = call(*args)
    runtime.synchronize(device)
    return result, time.perf_counter() - start


def timing_figure(images: Sequence[torch.Tensor], titles: Sequence[str], columns: int, suptitle: str,
                  size: torch.Size, device: str, precision: str, times: Sequence[float], note: str, path: Path):
    """:func:`imaging.show_images` with a caption giving the size, device, precision and mean ms per image."""
    height, width = size[-2:]
    return show_images(
        images, titles, columns=columns, panel_size=2.8, suptitle=suptitle,
        caption=(f"{width}x{height} px on {device} in {precision}; mean {sum(times) / len(times):.0f} ms per image "
                 f"{note}"),
        path=path,
    )


def gatys_demo(
    settings: DemoSettings,
    output_dir: Path,
    content: str = "carcassonne.jpg",
    style: str = "starry_night.jpg",
):
    """Gatys et al. on one content/style pair: figure content | style | result, with the time taken."""
    final_size = settings.gatys_scales[-1]
    content_image = load_image(ASSETS / content, final_size)
    style_image = load_image(ASSETS / style, final_size)
    options = GatysOptions(scales=settings.gatys_scales, iterations=settings.gatys_iterations,
                           style_weight=settings.gatys_style_weight, device=settings.device)
    result = StyleTransfer(options).run(content_image, style_image)
    save_image(result.image, output_dir / "gatys_result.png")
    scales = " -> ".join(f"{w}x{h} px" for h, w in result.sizes)  # as run (the memory check may downscale)
    figure = show_images(
        [content_image, style_image, result.image],
        ["content", "style", f"Gatys et al. ({result.seconds:.1f} s)"],
        suptitle="Optimisation-based style transfer (Gatys et al. 2016)",
        caption=(f"{sum(settings.gatys_iterations)} L-BFGS iterations at {scales} on {result.device} in "
                 f"{result.precision} (VGG passes; losses in fp32); "
                 f"normalised VGG19, content relu4_2, style relu1_1..relu5_1, alpha 1, beta {options.style_weight:g}. "
                 f"Total loss {result.history[0]['total']:.3g} -> {result.final_loss:.3g}."),
        path=output_dir / "gatys.png",
    )
    return figure, result


def realtime_demo(
    settings: DemoSettings,
    output_dir: Path,
    photos: Sequence[str] = ("carcassonne.jpg", "chameleon.jpg"),
    model_name: str = "realtime_4styles",
):
    """Every shipped style on each photo with the transform network; returns (figure, ms per image)."""
    device = torch.device(settings.device)
    model = realtime.load_style_model(model_name, device=device)
    images, titles, times = [], [], []
    for photo_name in photos:
        photo = load_image(ASSETS / photo_name, settings.realtime_size).to(device)
        realtime.stylize(photo, model)  # warm-up (allocations, cuDNN autotuning)
        images.append(photo.cpu())
        titles.append(Path(photo_name).stem)
        for style in model.style_names:
            output, seconds = timed(device, realtime.stylize, photo, model, style)
            times.append(seconds * 1000)
            images.append(output.cpu())
            titles.append(f"{style.replace('_', ' ')}\n{times[-1]:.0f} ms")
            save_image(output, output_dir / f"realtime_{Path(photo_name).stem}_{style}.jpg")
    figure = timing_figure(
        images, titles, len(model.style_names) + 1,
        "Real-time style transfer (Johnson et al. 2016): one network, four styles (conditional instance norm)",
        images[0].shape, settings.device, runtime.resolve_precision(model.precision, device), times,
        "(one forward pass; warm-up excluded). Photos not seen in training.", output_dir / "realtime.png")
    return figure, sum(times) / len(times)


def cyclegan_demo(
    settings: DemoSettings,
    output_dir: Path,
    photo: str = "pool.jpg",
    painting: str = "van_gogh_0013.jpg",
):
    """Photo -> painting and painting -> photo on held-out images, with the cycle reconstructions."""
    device = torch.device(settings.device)
    photo2painting = cyclegan.load_generator("photo2painting", device=device)
    painting2photo = cyclegan.load_generator("painting2photo", device=device)
    rows, titles = [], []
    for name, forward, backward, labels in [
        (photo, photo2painting, painting2photo, ("photo", "-> painting", "-> photo again")),
        (painting, painting2photo, photo2painting, ("painting", "-> photo", "-> painting again")),
    ]:
        real = load_image(ASSETS / name, settings.cyclegan_size).to(device)
        fake = translate(forward, real)
        reconstructed = translate(backward, fake)
        error = (reconstructed - real).abs().mean().item()
        rows += [real.cpu(), fake.cpu(), reconstructed.cpu()]
        titles += [labels[0], labels[1], f"{labels[2]} (L1 {error:.3f})"]
        save_image(fake, output_dir / f"cyclegan_{Path(name).stem}.jpg")
    figure = show_images(
        rows, titles, columns=3, panel_size=3.0,
        suptitle="CycleGAN (Zhu et al. 2017): unpaired photo <-> painting",
        caption=(f"Images the generators never saw, on {device} in "
                 f"{runtime.resolve_precision(photo2painting.precision, device)}. "
                 f"Shipped generators: {cyclegan.shipped_summary()} (assets/MANIFEST.json), so expect colour and "
                 "texture shifts rather than the paper's quality."),
        path=output_dir / "cyclegan.png",
    )
    return figure


ADAIN_STYLES = ("starry_night.jpg", "great_wave.jpg", "kandinsky_composition_viii.jpg", "night_cafe.jpg",
                "bal_du_moulin_de_la_galette.jpg", "mona_lisa.jpg", "poppies_hokusai.jpg", "summertime_cassatt.jpg",
                "village_street_auvers.jpg")


def adain_demo(
    settings: DemoSettings,
    output_dir: Path,
    photo: str = "chameleon.jpg",
    styles: Sequence[str] = ADAIN_STYLES,
    size: int | None = None,
):
    """AdaIN (Huang & Belongie 2017) with each of the nine style images on one photo; returns (figure, ms per image).

    One pretrained decoder serves every style, including the five no network here was trained on. Default size
    (``settings.adain_size``): 1024 px on a GPU, 384 px on a CPU: there one image costs about 2.6 s of CPU time on this
    project's 2-core EPYC (measured at load 11, where it took 19 s of wall time; at 512 px 17 s of wall time)."""
    import adain

    device = torch.device(settings.device)
    size = size or settings.adain_size
    model = adain.load_adain(device=device)
    content = load_image(ASSETS / photo, size)
    adain.stylize_adain(content, load_image(ASSETS / styles[0], size), model)  # warm-up
    images, titles, times = [content], [f"{Path(photo).stem} (photo)"], []
    for style_name in styles:
        style = load_image(ASSETS / style_name, size)
        output, seconds = timed(device, adain.stylize_adain, content, style, model)
        times.append(seconds * 1000)
        images.append(output)
        titles.append(f"{Path(style_name).stem.replace('_', ' ')[:26]}\n{times[-1]:.0f} ms")
        save_image(output, output_dir / f"adain_{Path(photo).stem}_{Path(style_name).stem}.jpg")
    figure = timing_figure(
        images, titles, 5, "Arbitrary style transfer (AdaIN, Huang & Belongie 2017): one decoder, any style image",
        content.shape, settings.device, runtime.resolve_precision("auto", device), times,
        "(style encoding included, warm-up excluded). Five of the nine styles were never seen by any network here.",
        output_dir / "adain.png")
    return figure, sum(times) / len(times)
