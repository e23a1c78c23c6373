"""Short-run ablations of the trained models for ``experiments/05_trained_models.ipynb``.

* Real-time network (Johnson et al. 2016): the style weight lambda_s, and training length (loss against iterations,
  held-out stylisations of one run at several points).
* CycleGAN (Zhu et al. 2017): lambda_cycle (eq. 3) and the identity loss (sec. 5.2) on or off.

Every run trains through the resumable ``nntools.Experiment`` in its own folder under ``runs_dir``, so re-running
the notebook continues or reuses finished runs instead of starting over.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import torch

import cyclegan
import realtime
from cyclegan_nets import translate
from imaging import load_image


def _check_folder(folder: str | Path, what: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {folder} does not exist; pass the folder of your {what.lower()}")
    return folder


def realtime_style_weights(
    photos_dir: str | Path, style_path: str | Path, style_weights: Sequence[float], base: realtime.RealtimeOptions,
    runs_dir: str | Path, held_out: int = 2,
) -> list[dict[str, Any]]:
    """Train one single-style network per lambda_s; returns per run: lambda_s, loss history, held-out outputs, seconds."""
    photos_dir = _check_folder(photos_dir, "Photos")
    rows = []
    for weight in style_weights:
        options = replace(base, style_weight=weight)
        output = Path(runs_dir) / f"realtime_sw{weight:g}"
        started = time.perf_counter()
        experiment = realtime.train_realtime(photos_dir, {"style": style_path}, output, options, progress=False)
        model = experiment.model.transformer.eval()
        photos = [experiment.val_set[i].unsqueeze(0).to(experiment.device) for i in range(min(held_out, len(experiment.val_set)))]
        with torch.no_grad():
            outputs = [model(photo, 0).cpu() for photo in photos]
        rows.append({"style_weight": weight, "iterations": experiment.iteration, "seconds": time.perf_counter() - started,
                     "history": list(experiment.iteration_history), "outputs": outputs, "photos": [p.cpu() for p in photos],
                     "final": dict(experiment.iteration_history[-1]) if experiment.iteration_history else {},
                     "samples_dir": output / "samples"})
    return rows


def cyclegan_variants(
    photos_dir: str | Path, paintings_dir: str | Path, variants: Mapping[str, Mapping[str, Any]],
    base: cyclegan.CycleGANOptions, runs_dir: str | Path, iterations: int, limit_images: int | None = 40,
    held_out: int = 4, hold_out: tuple[int, int] = (8, 6),
) -> list[dict[str, Any]]:
    """Train CycleGAN once per variant (overrides of ``base``); returns losses, held-out cycle error and samples."""
    photos_dir, paintings_dir = _check_folder(photos_dir, "Photos"), _check_folder(paintings_dir, "Paintings")
    rows = []
    for name, overrides in variants.items():
        options = replace(base, **overrides)
        started = time.perf_counter()
        experiment = cyclegan.train_cyclegan(photos_dir, paintings_dir, Path(runs_dir) / f"cyclegan_{name}", options,
                                             max_iterations=iterations, limit_images=limit_images, progress=False,
                                             checkpoint_every=max(10, iterations // 4),
                                             hold_out_photos=hold_out[0], hold_out_paintings=hold_out[1],
                                             log_every=max(1, iterations // 50))
        model = experiment.model
        generator_a, generator_b = model.networks["G_A"].eval(), model.networks["G_B"].eval()
        photos = [experiment.val_set[i]["A"].unsqueeze(0) for i in range(min(held_out, len(experiment.val_set)))]
        with torch.no_grad():
            error = cyclegan.cycle_reconstruction_error(generator_a, generator_b, photos)
            fakes = [translate(generator_a, p).cpu() for p in photos]
            reconstructions = [translate(generator_b, f).cpu() for f in fakes]
        rows.append({"variant": name, "overrides": dict(overrides), "iterations": experiment.iteration,
                     "seconds": time.perf_counter() - started, "history": list(experiment.iteration_history),
                     "cycle_error": error, "photos": photos, "fakes": fakes, "reconstructions": reconstructions})
    return rows


def loss_curves(rows: Sequence[Mapping[str, Any]], label_key: str, keys: Sequence[str], title: str,
                path: str | Path | None = None) -> plt.Figure:
    """One panel per loss key, one line per run, against training iterations."""
    figure, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.6), squeeze=False)
    for axis, key in zip(axes[0], keys):
        for row in rows:
            points = [(h["iteration"], h[key]) for h in row["history"] if key in h]
            if points:
                axis.plot(*zip(*points), label=f"{label_key} {row[label_key]}")
        axis.set_xlabel("iteration")
        axis.set_ylabel(key)
        axis.set_title(key)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100, bbox_inches="tight")
    return figure


def sample_progression(samples_dir: str | Path, count: int = 5) -> tuple[list[torch.Tensor], list[str]]:
    """Up to ``count`` evenly spaced held-out sample grids a run saved while training (``iter_*.png``)."""
    files = sorted(Path(samples_dir).glob("iter_*.png"))
    if not files:
        return [], []
    step = max(1, len(files) // count)
    chosen = files[::step][: count - 1] + [files[-1]] if len(files) > 1 else files
    chosen = list(dict.fromkeys(chosen))
    return [load_image(f) for f in chosen], [f"iteration {int(f.stem.split('_')[1])}" for f in chosen]
