"""The runs and figures of ``train_gatys.ipynb``: one photo in several styles (Gatys et al. 2016, Fig. 2), blended
styles, original colours (Gatys et al. 2016b), high resolution through multi-scale, snapshots and loss curves.

Each function runs the optimisation through :class:`gatys.StyleTransfer`, returns the results and a labelled
matplotlib figure, and saves the figure under ``output_dir`` when one is given.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import torch

from gatys import GatysOptions, GatysResult, StyleTransfer
from imaging import load_image, show_images


def _save(figure, output_dir: str | Path | None, name: str):
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        figure.savefig(Path(output_dir) / name, dpi=100, bbox_inches="tight")
    return figure


def _settings(options: GatysOptions) -> str:
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
    figure.text(0.5, 0.01, _settings(options) + f"; device {results[0].device}", ha="center", fontsize=9)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return results, _save(figure, output_dir, "styles.png")


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
        suptitle="Blended styles: weighted Gram targets", caption=_settings(options), panel_size=3.0,
    )
    return results, _save(figure, output_dir, "blends.png")


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
                         caption=_settings(options))
    return results, _save(figure, output_dir, "colours.png")


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
    return {"multi": multi, "single": single}, _save(figure, output_dir, "multiscale.png")


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
                         suptitle="Snapshots of the optimisation", caption=_settings(options), panel_size=2.6)
    return result, _save(figure, output_dir, "snapshots.png")


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
    return _save(figure, output_dir, "losses.png")

