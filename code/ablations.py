"""Ablations of the Gatys et al. (2016) optimisation for the ``experiments/`` notebooks: sweeps, figures and CSVs.

Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural Networks", CVPR 2016:

* Fig. 1 - reconstructions from white noise of the content (one layer, eq. 1) and of the style (a set of layers,
  eqs. 4-5): :func:`reconstructions`.
* Fig. 3 - the ratio alpha / beta of eq. 7 crossed with the style layer sets conv1_1, conv1_1..conv2_1, ...,
  conv1_1..conv5_1: :func:`alpha_beta_grid`.
* Fig. 5 - the content layer (conv2_2 vs conv4_2): :func:`content_layer_sweep`.
* Fig. 6 - the initialisation (content, style, white noise), and the remaining knobs (pooling, weights, total
  variation, style scale): :func:`knob_study`; the optimiser (L-BFGS in the paper vs first-order methods):
  :func:`optimiser_study`.

Every run goes through :class:`gatys.StyleTransfer` with one VGG per (arch, weights, pooling), built for the union of
the layers the sweep needs (the extractor stops at the deepest layer a run asks for). Each run also records the wall
time of every iteration (through the snapshot callback), so losses can be plotted against time.

Layer names follow PyTorch: Gatys et al. name layers after Caffe's in-place ReLU blobs, so their conv4_2 is our
``relu4_2``; figures use the paper's names and say so in their captions (:data:`LAYER_NOTE`).
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch

from gatys import DEFAULT_LEARNING_RATES, GatysOptions, GatysResult, StyleTransfer
from imaging import load_image, tensor_to_pil
from vgg import VGGFeatures, layer_names
from vgg_weights import BLOCK_SIZES, WeightSourceError

LAYER_NOTE = "Layer names as in Gatys et al. (Caffe): their convX_Y is the rectified output, PyTorch's reluX_Y."
REFERENCE_SIZE = 512  # the ratios alpha / beta are quoted at this size (the paper's image size, our default)
FIGURE_DPI = 100


# --------------------------------------------------------------------------------------------------- layers
def paper_layer_name(layer: str) -> str:
    """PyTorch name -> the paper's (Caffe) name: ``relu4_2`` -> ``conv4_2``; a pre-ReLU ``conv4_2`` -> ``conv4_2 (pre-ReLU)``."""
    if layer.startswith("relu"):
        return "conv" + layer[4:]
    if layer.startswith("conv"):
        return layer + " (pre-ReLU)"
    return layer


def layer_set_label(layers: Iterable[str]) -> str:
    """``("relu1_1", "relu2_1", "relu3_1")`` -> ``"conv1_1..conv3_1"`` (the paper's cumulative sets), else a list."""
    layers = list(layers)
    if len(layers) == 1:
        return paper_layer_name(layers[0])
    if layers == [f"relu{b}_1" for b in range(1, len(layers) + 1)]:
        return f"conv1_1..conv{len(layers)}_1"
    return ", ".join(paper_layer_name(name) for name in layers)


def style_layer_sets(arch: str = "vgg19") -> list[tuple[str, ...]]:
    """The style layer sets of Gatys et al. Fig. 1 and 3: conv1_1; conv1_1, conv2_1; ...; conv1_1 ... conv5_1."""
    blocks = len(BLOCK_SIZES[arch])
    return [tuple(f"relu{b}_1" for b in range(1, last + 1)) for last in range(1, blocks + 1)]


def content_layer_choices(arch: str = "vgg19") -> list[str]:
    """The content layers of Gatys et al. Fig. 1: conv1_2, conv2_2, ..., conv5_2 (PyTorch ``relu*_2``)."""
    return [f"relu{b}_2" for b in range(1, len(BLOCK_SIZES[arch]) + 1)]


def beta_for_ratio(ratio: float, size: int, alpha: float = 1.0, reference_size: int = REFERENCE_SIZE) -> float:
    """beta such that alpha / beta = ``ratio`` at ``reference_size`` px, rescaled to ``size`` px.

    L_content (eq. 1) sums over the positions of the content layer while E_l (eq. 4) is normalised by M_l^2, so the
    same balance needs beta proportional to the pixel count: beta(size) = alpha / ratio * (size / reference)^2.
    """
    if ratio <= 0:
        raise ValueError(f"ratio must be > 0, got {ratio}")
    return alpha / ratio * (size / reference_size) ** 2


def ratio_label(ratio: float) -> str:
    """``1e-05`` -> ``"1e-5"`` (decades), other values in %g."""
    exponent = math.log10(ratio)
    return f"1e{round(exponent)}" if abs(exponent - round(exponent)) < 1e-9 else f"{ratio:g}"


# ------------------------------------------------------------------------------------------------------ runs
@dataclass
class AblationRun:
    """One configuration of a sweep: its label, the options it changed, the result and per-iteration wall times.

    ``skipped`` holds the reason when the run could not be made (e.g. VGG16 weights need internet).
    """

    label: str
    settings: dict[str, Any]
    result: GatysResult | None = None
    elapsed: list[float] = field(default_factory=list)  # seconds since the start of ``run`` after each iteration
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def history(self) -> list[dict[str, float]]:
        return self.result.history if self.result is not None else []

    def final(self, key: str = "total") -> float:
        """Last recorded value of a loss term (nan when skipped)."""
        return self.history[-1][key] if self.history else math.nan

    def summary(self) -> dict[str, Any]:
        """One CSV row: the settings, final and initial losses (unweighted and weighted), iterations, seconds."""
        row: dict[str, Any] = {"label": self.label}
        row.update({k: _csv_value(v) for k, v in self.settings.items()})
        if self.result is None:
            row["skipped"] = self.skipped
            return row
        options, first, last = self.result.options, self.history[0], self.history[-1]
        row.update({
            "alpha": options["content_weight"], "beta": options["style_weight"], "tv_weight": options["tv_weight"],
            "height": self.result.image.shape[2], "width": self.result.image.shape[3],
            "iterations": len(self.history), "seconds": round(self.result.seconds, 3),
            "seconds_per_iteration": round(self.result.seconds / len(self.history), 4),
            "device": self.result.device,
            "initial_total": first["total"], "final_total": last["total"], "min_total": min(h["total"] for h in self.history),
            "final_content": last["content"], "final_style": last["style"], "final_tv": last["tv"],
            "final_weighted_content": options["content_weight"] * last["content"],
            "final_weighted_style": options["style_weight"] * last["style"],
        })
        return row


def _csv_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return layer_set_label(value.keys())
    if isinstance(value, (list, tuple)):
        return layer_set_label(value) if all(isinstance(v, str) for v in value) else " ".join(map(str, value))
    return value


def _vgg_key(options: GatysOptions) -> tuple[str, str, str]:
    return options.arch, options.weights, options.pooling


def run_ablation(
    content: torch.Tensor,
    style: torch.Tensor,
    base: GatysOptions,
    configs: Sequence[tuple[str, Mapping[str, Any]]],
    verbose: bool = True,
) -> list[AblationRun]:
    """Run ``base`` with each ``(label, overrides)``; one VGG per (arch, weights, pooling) serves all its runs.

    A weight source that cannot be loaded (``WeightSourceError``, a failed download, torchvision missing) turns the
    runs that need it into skipped runs with the reason printed, instead of failing the whole sweep.
    """
    planned = [(label, dict(overrides), replace(base, **overrides)) for label, overrides in configs]
    for _, _, options in planned:
        options.validate()
    union: dict[tuple[str, str, str], set[str]] = {}
    for _, _, options in planned:
        union.setdefault(_vgg_key(options), set()).update(options.content_layer_weights(), options.style_layer_weights())
    networks: dict[tuple[str, str, str], VGGFeatures | str] = {}
    runs = []
    for index, (label, overrides, options) in enumerate(planned, start=1):
        key = _vgg_key(options)
        if key not in networks:
            order = layer_names(options.arch)
            try:
                networks[key] = VGGFeatures(sorted(union[key], key=order.index), *key)
            except (WeightSourceError, OSError, ImportError, RuntimeError) as error:
                networks[key] = f"{type(error).__name__}: {error}"
                print(f"Skipping the runs with arch={key[0]}, weights={key[1]}: {networks[key]}")
        network = networks[key]
        if isinstance(network, str):
            runs.append(AblationRun(label, overrides, skipped=network))
            continue
        elapsed: list[float] = []
        transfer = StyleTransfer(replace(options, snapshot_every=1), vgg=network)
        start = time.perf_counter()
        result = transfer.run(content, style, callback=lambda i, image, losses: elapsed.append(time.perf_counter() - start))
        runs.append(AblationRun(label, overrides, result, elapsed))
        if verbose:
            print(f"[{index}/{len(planned)}] {label}: loss {result.history[0]['total']:.3g} -> {result.final_loss:.3g} "
                  f"in {result.seconds:.1f} s", flush=True)
    return runs


def history_rows(runs: Sequence[AblationRun]) -> list[dict[str, Any]]:
    """Long-format per-iteration losses: label, iteration, seconds, total, content, style, tv."""
    rows = []
    for run in runs:
        for iteration, (record, seconds) in enumerate(zip(run.history, run.elapsed), start=1):
            rows.append({"label": run.label, "iteration": iteration, "seconds": round(seconds, 4),
                         **{k: record[k] for k in ("total", "content", "style", "tv")}})
    return rows


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write dict rows (columns: the union of keys, first-seen order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def save_runs(runs: Sequence[AblationRun], output_dir: str | Path | None, name: str) -> list[Path]:
    """``{name}.csv`` (one row per run) and ``{name}_history.csv`` (one row per iteration) under ``output_dir``."""
    if output_dir is None:
        return []
    output_dir = Path(output_dir)
    return [write_csv([r.summary() for r in runs], output_dir / f"{name}.csv"),
            write_csv(history_rows(runs), output_dir / f"{name}_history.csv")]


# --------------------------------------------------------------------------------------------------- figures
def save_figure(figure: plt.Figure, output_dir: str | Path | None, name: str) -> plt.Figure:
    """Save ``figure`` as ``output_dir/name`` (PNG, 100 dpi) when a directory is given; returns the figure."""
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        figure.savefig(Path(output_dir) / name, dpi=FIGURE_DPI, bbox_inches="tight")
    return figure


def image_grid(
    images: Sequence[Sequence[torch.Tensor | None]],
    row_labels: Sequence[str],
    column_labels: Sequence[str] | None = None,
    panel_titles: Sequence[Sequence[str]] | None = None,
    title: str | None = None,
    caption: str | None = None,
    panel: float = 1.7,
) -> plt.Figure:
    """Images in rows (ragged rows allowed, ``None`` for a missing panel), labelled per row, column and panel."""
    rows, columns = len(images), max(len(r) for r in images)
    first = next(image for row in images for image in row if image is not None)
    aspect = first.shape[-2] / first.shape[-1]
    figure, axes = plt.subplots(rows, columns, figsize=(panel * columns + 0.6, panel * aspect * rows + 0.9 + 0.25 * rows),
                                squeeze=False)
    for r in range(rows):
        for c in range(columns):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_visible(False)
            image = images[r][c] if c < len(images[r]) else None
            if image is not None:
                axis.imshow(tensor_to_pil(image))
            elif c < len(images[r]):
                axis.text(0.5, 0.5, "skipped", ha="center", va="center", fontsize=8, color="gray")
            heading = []
            if r == 0 and column_labels is not None and c < len(column_labels):
                heading.append(column_labels[c])
            if panel_titles is not None and c < len(panel_titles[r]) and panel_titles[r][c]:
                heading.append(panel_titles[r][c])
            if heading:
                axis.set_title("\n".join(heading), fontsize=7.5)
            if c == 0:
                axis.set_ylabel(row_labels[r], fontsize=8)
    if title:
        figure.suptitle(title, fontsize=11)
    if caption:
        figure.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7.5, wrap=True)
    figure.tight_layout(rect=(0, 0.05 if caption else 0, 1, 1), h_pad=0.4, w_pad=0.2)
    return figure


def loss_curves(
    runs: Sequence[AblationRun],
    x: str = "iteration",
    key: str = "total",
    title: str | None = None,
    caption: str | None = None,
) -> plt.Figure:
    """``key`` loss of each run against iterations (``x="iteration"``) or wall seconds (``x="seconds"``), log scale."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for run in runs:
        if not run.ok:
            continue
        values = [h[key] for h in run.history]
        steps = run.elapsed if x == "seconds" else list(range(1, len(values) + 1))
        axis.plot(steps, values, label=run.label, linewidth=1.4)
    axis.set_yscale("log")
    axis.set_xlabel("wall time (s)" if x == "seconds" else "iteration (one loss + gradient evaluation each)")
    axis.set_ylabel(f"{key} loss" + (" (alpha L_content + beta L_style, eq. 7)" if key == "total" else ""))
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    if title:
        axis.set_title(title, fontsize=10)
    if caption:
        figure.text(0.5, 0.0, caption, ha="center", va="top", fontsize=7.5, wrap=True)
    figure.tight_layout()
    return figure


# ------------------------------------------------------------------------------------- part 1: alpha / beta
def alpha_beta_configs(
    ratios: Sequence[float], layer_sets: Sequence[Sequence[str]], size: int, alpha: float = 1.0
) -> list[tuple[str, dict[str, Any]]]:
    """One config per (style layer set, ratio), rows then columns, as in Gatys et al. Fig. 3.

    ``ratios`` are alpha / beta at :data:`REFERENCE_SIZE` px; beta is rescaled to ``size`` (:func:`beta_for_ratio`).
    """
    return [
        (f"{layer_set_label(layers)} | {ratio_label(ratio)}",
         {"style_layers": tuple(layers), "content_weight": alpha, "style_weight": beta_for_ratio(ratio, size, alpha),
          "ratio_at_512": ratio})
        for layers in layer_sets for ratio in ratios
    ]


def _split_extra(configs: Sequence[tuple[str, Mapping[str, Any]]], extra: Sequence[str]):
    """Separate bookkeeping keys (recorded in the CSV, not GatysOptions fields) from the options overrides."""
    options, info = [], []
    for label, overrides in configs:
        options.append((label, {k: v for k, v in overrides.items() if k not in extra}))
        info.append({k: overrides[k] for k in extra if k in overrides})
    return options, info


def alpha_beta_grid(
    content_path: str | Path,
    style_path: str | Path,
    base: GatysOptions,
    ratios: Sequence[float],
    layer_sets: Sequence[Sequence[str]] | None = None,
    output_dir: str | Path | None = None,
) -> tuple[list[AblationRun], dict[str, plt.Figure]]:
    """Gatys et al. Fig. 3: rows = style layer sets, columns = alpha / beta; plus the final loss terms per ratio.

    Saves ``alpha_beta_grid.png``, ``alpha_beta_losses.png``, ``alpha_beta.csv`` and ``alpha_beta_history.csv``.
    """
    layer_sets = layer_sets or style_layer_sets(base.arch)
    size = base.sizes()[-1]
    content, style = load_image(content_path, size), load_image(style_path, size)
    configs, info = _split_extra(alpha_beta_configs(ratios, layer_sets, size, base.content_weight), ["ratio_at_512"])
    runs = run_ablation(content, style, base, configs)
    for run, extra in zip(runs, info):
        run.settings.update(extra)
    save_runs(runs, output_dir, "alpha_beta")
    columns = len(ratios)
    images = [[runs[r * columns + c].result.image for c in range(columns)] for r in range(len(layer_sets))]
    grid = image_grid(
        images, [layer_set_label(layers) for layers in layer_sets],
        [f"alpha/beta {ratio_label(r)}" for r in ratios],
        title=f"alpha / beta (columns) x style layers (rows), from white noise (cf. Gatys et al. 2016, Fig. 3)",
        caption=(f"{_describe(base, size)}; content {Path(content_path).stem} at conv4_2, style {Path(style_path).stem}. "
                 f"alpha/beta quoted at {REFERENCE_SIZE} px: beta = (alpha/ratio) (size/{REFERENCE_SIZE})^2. {LAYER_NOTE}"),
    )
    figures = {"grid": save_figure(grid, output_dir, "alpha_beta_grid.png")}
    figures["losses"] = save_figure(balance_plot(runs, ratios, layer_sets, base, size), output_dir, "alpha_beta_losses.png")
    return runs, figures


def balance_plot(
    runs: Sequence[AblationRun], ratios: Sequence[float], layer_sets: Sequence[Sequence[str]], base: GatysOptions, size: int
) -> plt.Figure:
    """Final content loss (eq. 1) and style loss (eq. 5) against alpha / beta, one line per style layer set."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.9))
    columns = len(ratios)
    for r, layers in enumerate(layer_sets):
        row = runs[r * columns:(r + 1) * columns]
        axes[0].plot(ratios, [run.final("content") for run in row], marker="o", label=layer_set_label(layers))
        axes[1].plot(ratios, [run.final("style") for run in row], marker="o", label=layer_set_label(layers))
    for axis, name in zip(axes, ("content loss L_content (eq. 1), conv4_2", "style loss L_style (eq. 5)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(f"alpha / beta (at {REFERENCE_SIZE} px)")
        axis.set_ylabel(f"final {name.split(' (')[0]}")
        axis.set_title(f"Final {name}", fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
        axis.invert_xaxis()  # more style to the right, as in the grid
    axes[1].legend(title="style layers", fontsize=8)
    figure.suptitle(f"Trade-off between the two terms of eq. 7 ({_describe(base, size)})", fontsize=10)
    figure.tight_layout()
    return figure


def _describe(options: GatysOptions, size: int | None = None) -> str:
    size = size or options.sizes()[-1]
    return (f"{sum(options.iterations_per_scale())} {options.optimizer.upper()} iterations, {size} px, "
            f"init {options.init}, {options.weights} {options.arch.upper()}, {options.pooling} pooling")


# -------------------------------------------------------------------------------- part 2: content layers
def content_layer_sweep(
    content_path: str | Path,
    style_path: str | Path,
    base: GatysOptions,
    layers: Sequence[str] | None = None,
    output_dir: str | Path | None = None,
) -> tuple[list[AblationRun], plt.Figure]:
    """Stylisation with the content loss at each of conv1_2 ... conv5_2, at the fixed style (cf. Gatys et al. Fig. 5)."""
    layers = list(layers or content_layer_choices(base.arch))
    size = base.sizes()[-1]
    content, style = load_image(content_path, size), load_image(style_path, size)
    runs = run_ablation(content, style, base, [(paper_layer_name(n), {"content_layers": (n,)}) for n in layers])
    save_runs(runs, output_dir, "content_layers")
    titles = [f"content {r.label}\nL_c {r.final('content'):.3g}, L_s {r.final('style'):.3g}" for r in runs]
    figure = image_grid(
        [[content, style] + [r.result.image for r in runs]], [""], panel_titles=[["content image", "style image"] + titles],
        title=f"Content layer, same alpha = {base.content_weight:g}, beta = {base.style_weight:.3g} (cf. Gatys et al. Fig. 5)",
        caption=(f"{_describe(base, size)}; style layers {layer_set_label(base.style_layer_weights())}. "
                 f"L_c: final content loss at the chosen layer (not comparable across layers), L_s: final style loss. {LAYER_NOTE}"),
        panel=2.0,
    )
    return runs, save_figure(figure, output_dir, "content_layers.png")


def reconstructions(
    content_path: str | Path,
    style_path: str | Path,
    base: GatysOptions,
    content_layers: Sequence[str] | None = None,
    layer_sets: Sequence[Sequence[str]] | None = None,
    output_dir: str | Path | None = None,
) -> tuple[list[AblationRun], plt.Figure]:
    """Gatys et al. Fig. 1: from white noise, match only the content at one layer (beta = 0) or only the style of a
    layer set (alpha = 0). Shows what each layer's representation keeps."""
    content_layers = list(content_layers or content_layer_choices(base.arch))
    layer_sets = [tuple(s) for s in (layer_sets or style_layer_sets(base.arch))]
    size = base.sizes()[-1]
    content, style = load_image(content_path, size), load_image(style_path, size)
    base = replace(base, init="noise")
    configs = [(f"content {paper_layer_name(n)}", {"content_layers": (n,), "content_weight": 1.0, "style_weight": 0.0})
               for n in content_layers]
    configs += [(f"style {layer_set_label(s)}", {"style_layers": s, "content_weight": 0.0, "style_weight": 1.0})
                for s in layer_sets]
    runs = run_ablation(content, style, base, configs)
    save_runs(runs, output_dir, "reconstructions")
    n = len(content_layers)
    content_runs, style_runs = runs[:n], runs[n:]
    figure = image_grid(
        [[style] + [r.result.image for r in style_runs], [content] + [r.result.image for r in content_runs]],
        ["style reconstructions", "content reconstructions"],
        panel_titles=[
            ["style image"] + [f"{layer_set_label(s)}\nL_s {r.final('style'):.2g}" for s, r in zip(layer_sets, style_runs)],
            ["content image"] + [f"{paper_layer_name(c)}\nL_c {r.final('content'):.3g}" for c, r in zip(content_layers, content_runs)],
        ],
        title="Reconstructions from white noise (cf. Gatys et al. 2016, Fig. 1)",
        caption=(f"{sum(base.iterations_per_scale())} {base.optimizer.upper()} iterations at {size} px from white noise; "
                 f"top: style only (alpha = 0, layers conv1_1 up to the named one), bottom: content only (beta = 0) at one "
                 f"layer. {LAYER_NOTE}"),
        panel=2.0,
    )
    return runs, save_figure(figure, output_dir, "reconstructions.png")


# ------------------------------------------------------------------------------------- part 3: optimisers
def optimiser_study(
    content_path: str | Path,
    style_path: str | Path,
    base: GatysOptions,
    optimizers: Sequence[str] = ("lbfgs", "adam", "sgd", "rmsprop", "adagrad"),
    lr_factors: Sequence[float] = (0.3, 1.0, 3.0),
    output_dir: str | Path | None = None,
) -> tuple[dict[str, list[AblationRun]], dict[str, plt.Figure]]:
    """The same problem with each optimiser; the first-order ones at ``lr_factors`` x their default learning rate.

    The best learning rate of each (lowest final loss) is plotted against iterations and against wall time; all
    runs go to ``optimisers.csv`` / ``optimisers_history.csv``. L-BFGS keeps its step 1 (its two-loop recursion
    scales the step); every optimiser makes one loss + gradient evaluation per iteration.
    """
    size = base.sizes()[-1]
    content, style = load_image(content_path, size), load_image(style_path, size)
    configs = []
    for name in optimizers:
        default = DEFAULT_LEARNING_RATES[name]
        for factor in ((1.0,) if name == "lbfgs" else lr_factors):
            configs.append((f"{name} lr {default * factor:.3g}", {"optimizer": name, "learning_rate": default * factor}))
    runs = run_ablation(content, style, base, configs)
    save_runs(runs, output_dir, "optimisers")
    best: dict[str, AblationRun] = {}
    for run in runs:
        name = run.settings["optimizer"]
        if name not in best or run.final() < best[name].final():
            best[name] = run
    chosen = list(best.values())
    caption = (f"Same problem for all: {_describe(base, size).split(', ', 1)[1]}, alpha {base.content_weight:g}, "
               f"beta {base.style_weight:.3g}; best of learning rates {', '.join(f'{f:g}' for f in lr_factors)} x default "
               f"for the first-order methods (L-BFGS: step 1). Device: {chosen[0].result.device}.")
    figures = {
        "iterations": save_figure(loss_curves(chosen, "iteration", title="Total loss against iterations", caption=caption),
                                  output_dir, "optimisers_loss_vs_iterations.png"),
        "seconds": save_figure(loss_curves(chosen, "seconds", title="Total loss against wall time", caption=caption),
                               output_dir, "optimisers_loss_vs_time.png"),
    }
    images = image_grid(
        [[content, style] + [r.result.image for r in chosen]], [""],
        panel_titles=[["content", "style"] + [f"{r.label}\nloss {r.final():.3g}, {r.result.seconds:.0f} s" for r in chosen]],
        title=f"Final images after {sum(base.iterations_per_scale())} iterations of each optimiser", caption=caption, panel=2.0,
    )
    figures["images"] = save_figure(images, output_dir, "optimisers_images.png")
    return {"all": runs, "best": chosen}, figures


# -------------------------------------------------------------------------------- part 4: remaining knobs
def knob_configs(vgg16: bool = True) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The knobs of part 4, each a list of (label, overrides) around the base options (an empty dict = the base)."""
    knobs = {
        "initialisation": [("noise", {"init": "noise"}), ("content", {"init": "content"}), ("style", {"init": "style"})],
        "pooling": [("max", {"pooling": "max"}), ("average", {"pooling": "avg"})],
        "weights": [("normalised VGG19", {"weights": "normalised"}), ("ImageNet VGG19", {"weights": "imagenet"})],
        "TV weight": [(f"tv {w:g}", {"tv_weight": float(w)}) for w in (0, 10, 100, 1000)],
        "style scale": [(f"style scale {s:g}", {"style_scale": s}) for s in (0.5, 1.0, 2.0)],
    }
    if vgg16:
        knobs["weights"].append(("torchvision VGG16", {"weights": "torchvision", "arch": "vgg16",
                                                      "content_layers": ("relu4_2",),
                                                      "style_layers": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}))
    return knobs


def knob_study(
    content_path: str | Path,
    style_path: str | Path,
    base: GatysOptions,
    knobs: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]] | None = None,
    output_dir: str | Path | None = None,
) -> tuple[dict[str, list[AblationRun]], plt.Figure]:
    """One row per knob (initialisation, pooling, weights, TV weight, style scale); identical configs run once.

    Saves ``knobs.png``, ``knobs.csv`` (with a ``knob`` column) and ``knobs_history.csv``.
    """
    knobs = knobs or knob_configs()
    size = base.sizes()[-1]
    content, style = load_image(content_path, size), load_image(style_path, size)
    unique: dict[str, tuple[str, dict[str, Any]]] = {}
    for label, overrides in (c for configs in knobs.values() for c in configs):
        key = repr(sorted(asdict_of(replace(base, **overrides)).items()))
        unique.setdefault(key, (label, dict(overrides)))
    runs_by_key = dict(zip(unique, run_ablation(content, style, base, list(unique.values()))))
    by_knob: dict[str, list[AblationRun]] = {}
    rows = []
    for knob, configs in knobs.items():
        by_knob[knob] = []
        for label, overrides in configs:
            shared = runs_by_key[repr(sorted(asdict_of(replace(base, **overrides)).items()))]
            run = AblationRun(label, dict(overrides), shared.result, shared.elapsed, shared.skipped)
            by_knob[knob].append(run)
            rows.append({"knob": knob, **run.summary()})
    if output_dir is not None:
        write_csv(rows, Path(output_dir) / "knobs.csv")
        write_csv(history_rows(list(runs_by_key.values())), Path(output_dir) / "knobs_history.csv")
    images = [[r.result.image if r.ok else None for r in runs] for runs in by_knob.values()]
    titles = [[f"{r.label}\n" + (f"L_c {r.final('content'):.3g}, L_s {r.final('style'):.3g}" if r.ok else "(unavailable)")
               for r in runs] for runs in by_knob.values()]
    figure = image_grid(
        images, list(by_knob), panel_titles=titles,
        title="The remaining knobs, one at a time around the same base",
        caption=(f"Base: {_describe(base, size)}, alpha {base.content_weight:g}, beta {base.style_weight:.3g}, TV 0, "
                 f"style scale 1; content at conv4_2, style conv1_1..conv5_1. L_c, L_s: final content / style loss "
                 f"(for other weights they are measured in that network's features). {LAYER_NOTE}"),
        panel=2.0,
    )
    return by_knob, save_figure(figure, output_dir, "knobs.png")


def asdict_of(options: GatysOptions) -> dict[str, Any]:
    """Options as a hashable-friendly dict (sequences as tuples), used to run identical configurations once."""
    from dataclasses import asdict

    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in asdict(options).items()}
