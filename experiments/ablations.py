"""Ablations of the Gatys optimisation for ``experiments/`` (Gatys, Ecker & Bethge, CVPR 2016).

* ``style_layer_sets``: the paper's Figure 3 rows, style from conv1_1 up to conv1_1..conv5_1 (our ``relu*``).
* ``sweep``: run one optimisation per configuration (a dict of GatysOptions overrides), reusing one VGG; returns a
  row per run (settings, losses, seconds, image) that ``write_csv`` stores and the figure functions draw.
* ``reconstruct``: Figure 1: images from white noise matching only the content (per layer) or only the style
  (per layer set) of one image.
* ``balanced_weights``: alpha, beta for another weight source with the same balance as a reference.
* figures: ``grid_figure`` (rows x columns of results), ``curves_figure`` (loss against iterations or seconds).

Layer names follow PyTorch: ``relu4_2`` is the paper's "conv4_2" (Caffe's in-place ReLU output).
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import figures
import matplotlib.pyplot as plt
import torch
from gatys import PAPER_STYLE_LAYERS, GatysOptions, StyleTransfer
from imaging import save_figure
from models import VGGFeatures, layer_names
from runtime import pick_device, resolve_precision


def style_layer_sets(layers: Sequence[str] = PAPER_STYLE_LAYERS) -> list[tuple[str, ...]]:
    """Cumulative sets (conv1_1), (conv1_1, conv2_1), ... as in Gatys et al. Fig. 3 (rows A-E)."""
    return [tuple(layers[: i + 1]) for i in range(len(layers))]


def short_name(layers: Sequence[str] | Mapping[str, float]) -> str:
    """'relu1_1..relu3_1' for a cumulative set, the name itself for a single layer."""
    layers = list(layers)
    return layers[0] if len(layers) == 1 else f"{layers[0]}..{layers[-1]}"


class _Timer:
    """Snapshot callback that records the wall time of every iteration (for loss-against-time plots)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: list[float] = []

    def __call__(self, iteration: int, image: torch.Tensor, losses: dict) -> None:
        self.seconds.append(time.perf_counter() - self.start)


def sweep(
    content: torch.Tensor,
    style: torch.Tensor,
    base: GatysOptions,
    configurations: Sequence[Mapping[str, Any]],
    record_time: bool = False,
) -> list[dict[str, Any]]:
    """One run per configuration (GatysOptions overrides); the VGG is built once for the union of layers."""
    options_list = [replace(base, **config) for config in configurations]
    for options in options_list:
        options.validate()
    vggs: dict[tuple, VGGFeatures] = {}
    rows = []
    for config, options in zip(configurations, options_list):
        key = (options.arch, options.weights, options.pooling)
        if key not in vggs:
            needed = {layer for o in options_list if (o.arch, o.weights, o.pooling) == key
                      for layer in list(o.content_layer_weights()) + list(o.style_layer_weights())}
            order = layer_names(options.arch)
            vggs[key] = VGGFeatures(sorted(needed, key=order.index), options.arch, options.weights, options.pooling)
        timer = _Timer() if record_time else None
        if timer is not None:
            options = replace(options, snapshot_every=1)
        result = StyleTransfer(options, vgg=vggs[key]).run(content, style, callback=timer)
        rows.append({
            "config": dict(config), "image": result.image, "history": result.history, "seconds": result.seconds,
            "iteration_seconds": timer.seconds if timer else None, "device": result.device,
            "loss_total": result.final_loss, "loss_content": result.history[-1]["content"],
            "loss_style": result.history[-1]["style"], "loss_start": result.history[0]["total"],
        })
    return rows


def reconstruct(
    image: torch.Tensor, kind: str, layer_choices: Sequence[Sequence[str]], base: GatysOptions
) -> list[dict[str, Any]]:
    """Gatys et al. Fig. 1: from white noise, match only the content (``kind="content"``: one layer each) or only the
    style (``kind="style"``: one layer set each) of ``image``."""
    if kind not in ("content", "style"):
        raise ValueError(f"kind must be 'content' or 'style', got {kind!r}")
    configurations = []
    for layers in layer_choices:
        if kind == "content":
            configurations.append({"content_layers": tuple(layers), "content_weight": 1.0, "style_weight": 0.0,
                                   "style_layers": tuple(layers), "init": "noise"})
        else:
            configurations.append({"style_layers": tuple(layers), "content_weight": 0.0, "style_weight": 1.0,
                                   "content_layers": (layers[0],), "init": "noise"})
    return sweep(image, image, base, configurations)


def balanced_weights(content: torch.Tensor, style: torch.Tensor, reference: GatysOptions,
                     options: GatysOptions) -> tuple[float, float]:
    """(alpha, beta) giving ``options``' network the balance ``reference`` has (for comparing weight sources).

    Different VGG weights have activations of very different scales (the ImageNet VGG19's relu4_1 is ~500x the
    normalised net's), so the same alpha, beta mean different things. We rescale them so that, on each network,
    alpha * L_content(style image) and beta * L_style(content image) equal the reference network's values.
    """
    def terms(opts: GatysOptions) -> tuple[float, float]:
        transfer = StyleTransfer(replace(opts, progress=False))
        size = opts.sizes()[-1]
        c = torch.nn.functional.interpolate(content.to(transfer.device), scale_factor=size / max(content.shape[-2:]),
                                            mode="bilinear", align_corners=False)
        s = torch.nn.functional.interpolate(style.to(transfer.device), size=c.shape[-2:], mode="bilinear",
                                            align_corners=False)
        with torch.no_grad():
            features = transfer.features(c)
            content_targets = {n: features[n].float() for n in opts.content_layer_weights()}
            style_targets = transfer.style_targets([s], [1.0])
            content_term = float(transfer.losses(s, content_targets, style_targets)["content"])
            style_term = float(transfer.losses(c, content_targets, style_targets)["style"])
        return content_term, style_term

    ref_content, ref_style = terms(reference)
    new_content, new_style = terms(options)
    return (reference.content_weight * ref_content / new_content, reference.style_weight * ref_style / new_style)


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Numbers of each run (configuration, final losses, seconds, device) as CSV."""
    records = []
    for row in rows:
        record = {k: (short_name(v) if isinstance(v, (list, tuple)) else v) for k, v in row["config"].items()}
        record.update({k: row[k] for k in ("loss_start", "loss_total", "loss_content", "loss_style", "seconds", "device")})
        record["iterations"] = len(row["history"])
        record.update(extra or {})
        records.append(record)
    return figures.write_csv(records, path)


def grid_figure(
    images: Sequence[Sequence[torch.Tensor]], row_labels: Sequence[str], column_labels: Sequence[str],
    title: str, caption: str, path: str | Path | None = None, panel: float = 2.2,
) -> plt.Figure:
    """Rows x columns of images with row and column labels, a title and a caption (saved when ``path`` is given)."""
    rows, columns = len(images), max(len(r) for r in images)
    figure, axes = plt.subplots(rows, columns, figsize=(panel * columns + 1.2, panel * rows * 0.8 + 1.2), squeeze=False)
    for r in range(rows):
        for c in range(columns):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c < len(images[r]):
                axis.imshow(images[r][c][0].permute(1, 2, 0).clamp(0, 1).numpy())
            else:
                axis.axis("off")
            if r == 0:
                axis.set_title(column_labels[c], fontsize=9)
            if c == 0:
                axis.set_ylabel(row_labels[r], fontsize=9)
    figure.suptitle(title, fontsize=12)
    figure.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=8, wrap=True)
    figure.tight_layout(rect=(0, 0.05, 1, 0.97))
    return save_figure(figure, path, dpi=120)  # 2.2-inch panels: 264 px, so 256-px results are not downsampled


def curves_figure(
    rows: Sequence[Mapping[str, Any]], labels: Sequence[str], x: str, title: str, path: str | Path | None = None,
) -> plt.Figure:
    """Total loss against ``x`` = "iteration" or "seconds" (log scale), one line per run."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for row, label in zip(rows, labels):
        totals = [h["total"] for h in row["history"]]
        xs = row["iteration_seconds"] if x == "seconds" else list(range(1, len(totals) + 1))
        axis.plot(xs[: len(totals)], totals[: len(xs)], label=label)
    axis.set_yscale("log")
    axis.set_xlabel("wall time (s)" if x == "seconds" else "iteration")
    axis.set_ylabel("total loss (eq. 7)")
    axis.set_title(title)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def options_summary(options: GatysOptions, optimizer: bool = True) -> str:
    """A one-line description of the shared settings, for captions (``optimizer=False``: when the figure varies it)."""
    values = asdict(options)
    precision = resolve_precision(options.precision, pick_device(options.device))
    iterations = f"{values['iterations']} {values['optimizer'] + ' ' if optimizer else ''}iterations"
    return (f"{iterations} at {values['size']} px, init {values['init']}, "
            f"{values['weights']} VGG19, {values['pooling']} pooling, {precision} (precision {options.precision!r})")
