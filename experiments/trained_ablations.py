"""Short-run ablations of the two trained models, for ``experiments/05_trained_models.ipynb``.

* Real-time network (Johnson, Alahi & Fei-Fei, ECCV 2016): the style weight lambda_s of the perceptual loss
  (eq. 5), and training length: held-out losses and stylisations of held-out photos at several checkpoints of one
  run per lambda_s (:func:`realtime_style_weights`).
* CycleGAN (Zhu, Park, Isola & Efros, ICCV 2017): lambda of the cycle loss (eq. 3, the paper uses 10) and the
  identity loss of sec. 5.2 on or off; held-out cycle reconstruction error (L1, eq. 2 unweighted) and identity
  error at several checkpoints (:func:`cyclegan_variants`).

Every run trains through the existing, resumable training functions (``realtime.train_realtime``,
``cyclegan.train_cyclegan``, both over ``nntools.Experiment``) in its own folder under ``runs_dir``. A run is
trained in stages, one per checkpoint (each stage resumes the previous one exactly), and what is measured at a
checkpoint is cached in ``<run>/ablation/iter_XXXXXX.pt``: re-running the notebook reuses finished stages instead
of training again, and adding a later checkpoint only trains the extra iterations.

Figures: :func:`plot_checkpoints` (held-out metrics against iterations), :func:`plot_training_losses` (logged
training losses), :func:`realtime_progress_figure`, :func:`realtime_final_figure`, :func:`cyclegan_samples_figure`;
numbers: :func:`checkpoint_rows`, :func:`history_rows`, :func:`write_csv`, :func:`format_table`.
"""
from __future__ import annotations

import json
import math
import re
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cyclegan
import figures
import matplotlib.pyplot as plt
import nntools
import realtime
import runtime
import torch
from cyclegan import translate
from imaging import list_images, save_figure, show_images

CACHE_FOLDER = "ablation"


# ------------------------------------------------------------------------------------------------ results
@dataclass
class AblationRun:
    """One training run of an ablation: its settings, what was measured at each checkpoint, the logged losses.

    ``checkpoints``: one dict per checkpoint with ``iteration``, ``seconds`` (cumulative wall time of the training
    calls, data loading included) and the held-out metrics; ``images[iteration]``: named image batches
    (N, 3, H, W) in [0, 1] at that checkpoint (held-out inputs and outputs); ``history``: the training losses the
    Experiment logged (``iteration`` plus one key per loss).
    """

    name: str
    settings: dict[str, Any]
    output_dir: Path
    checkpoints: list[dict[str, float]] = field(default_factory=list)
    images: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        """The metrics at the last checkpoint reached."""
        return self.checkpoints[-1] if self.checkpoints else {}

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(iterations, values) of one checkpoint metric."""
        points = [(c["iteration"], c[key]) for c in self.checkpoints if key in c]
        return [p[0] for p in points], [p[1] for p in points]


def require_folder(folder: str | Path, what: str) -> Path:
    """``folder`` as a Path; a FileNotFoundError naming it (and what it should hold) when it is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {folder} does not exist: pass the folder of your {what.lower()} "
                                "(e.g. COCO train2014 for photos, a CycleGAN dataset's trainB for paintings)")
    return folder


def options_tag(options: Any, ignore: Sequence[str] = ()) -> str:
    """8 hex digits identifying a dataclass of options (minus ``ignore``): runs with other settings get other folders."""
    values = {k: v for k, v in asdict(options).items() if k not in ignore}
    return f"{runtime.derive_seed(json.dumps(values, sort_keys=True, default=str)) & 0xFFFFFFFF:08x}"


def _to_bytes(images: torch.Tensor) -> torch.Tensor:
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


def _from_bytes(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255


def _cache_path(output_dir: Path, iteration: int) -> Path:
    return output_dir / CACHE_FOLDER / f"iter_{iteration:06d}.pt"


def _load_cached(output_dir: Path, iteration: int) -> dict[str, Any] | None:
    path = _cache_path(output_dir, iteration)
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception as error:  # noqa: BLE001 - a broken cache entry is recomputed if the run allows it
        warnings.warn(f"ignoring unreadable {path}: {error}")
        return None


def _save_cached(output_dir: Path, iteration: int, entry: dict[str, Any]) -> None:
    path = _cache_path(output_dir, iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(entry, tmp)
    tmp.replace(path)


def _staged_run(
    run: AblationRun, checkpoints: Sequence[int],
    train_to: Callable[[int], nntools.Experiment], measure: Callable[[nntools.Experiment], tuple[dict, dict]],
) -> AblationRun:
    """Train ``run`` to each checkpoint in turn (``train_to(iteration)`` resumes its Experiment) and measure there.

    A checkpoint already measured is read from the cache; one the run has already passed without a cache entry
    (its cache was deleted) is skipped with a warning, since the weights of that moment are gone.
    """
    seconds = 0.0
    for iteration in sorted(set(int(c) for c in checkpoints)):
        entry = _load_cached(run.output_dir, iteration)
        if entry is None:
            started = time.perf_counter()
            experiment = train_to(iteration)
            seconds += time.perf_counter() - started
            if experiment.iteration != iteration:
                warnings.warn(f"{run.output_dir} is at iteration {experiment.iteration}, not {iteration}: "
                              "checkpoint skipped (delete the run folder to measure it again)")
                continue
            metrics, images = measure(experiment)
            entry = {"metrics": {"iteration": iteration, "seconds": seconds, **metrics},
                     "images": {k: _to_bytes(v) for k, v in images.items()},
                     "history": [dict(h) for h in experiment.iteration_history]}
            _save_cached(run.output_dir, iteration, entry)
        seconds = float(entry["metrics"]["seconds"])
        run.checkpoints.append({k: float(v) if k != "iteration" else int(v) for k, v in entry["metrics"].items()})
        run.images[iteration] = {k: _from_bytes(v) for k, v in entry["images"].items()}
        run.history = [dict(h) for h in entry["history"]]
    return run


# ------------------------------------------------------------------------------------------ real-time network
def realtime_style_weights(
    photos_dir: str | Path, style_path: str | Path, style_weights: Sequence[float],
    base: realtime.RealtimeOptions, runs_dir: str | Path, checkpoints: Sequence[int],
    device: str | torch.device | None = None, progress: bool = False,
) -> list[AblationRun]:
    """One single-style transform network (Johnson et al. 2016) per lambda_s in ``style_weights``, measured at
    each iteration count in ``checkpoints`` (training length).

    At every checkpoint: the held-out perceptual-loss terms (``content``, ``style``, ``tv``: unweighted, averaged
    over ``base.holdout`` photos never trained on; ``total`` uses the run's weights) and the stylised held-out
    photos (``images[iteration]["output"]``; the photos are ``["photo"]``). Everything else is ``base``.
    """
    photos_dir = require_folder(photos_dir, "Photos")
    if not Path(style_path).is_file():
        raise FileNotFoundError(f"style image {style_path} does not exist")
    runs = []
    for weight in style_weights:
        options = replace(base, style_weight=float(weight))
        tag = options_tag(options, ignore=("iterations", "sample_every", "export_every"))
        run = AblationRun(f"lambda_s = {weight:g}", {"style_weight": float(weight)},
                          Path(runs_dir) / f"realtime_sw{weight:g}_{tag}")

        def train_to(iteration: int, options: realtime.RealtimeOptions = options, run: AblationRun = run
                     ) -> nntools.Experiment:
            return realtime.train_realtime(photos_dir, {"style": style_path}, run.output_dir,
                                           replace(options, iterations=iteration), device=device, progress=progress)

        runs.append(_staged_run(run, checkpoints, train_to, _measure_realtime))
    return runs


def _measure_realtime(experiment: nntools.Experiment) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Held-out losses (``Experiment.evaluate``) and stylisations of the held-out photos."""
    metrics = {f"heldout_{k}": float(v) for k, v in experiment.evaluate().items()}
    photos = torch.stack([experiment.val_set[i] for i in range(len(experiment.val_set))]).to(experiment.device)
    network = experiment.model.transformer
    network.eval()
    with torch.no_grad():
        outputs = network(photos, 0)
    network.train()
    return metrics, {"photo": photos, "output": outputs}


# -------------------------------------------------------------------------------------------------- CycleGAN
def cyclegan_variants(
    photos_dir: str | Path, paintings_dir: str | Path, variants: Mapping[str, Mapping[str, Any]],
    base: cyclegan.CycleGANOptions, runs_dir: str | Path, checkpoints: Sequence[int],
    limit_images: int | None = 40, hold_out: tuple[int, int] = (6, 6), device: str | torch.device | None = None,
    progress: bool = False,
) -> list[AblationRun]:
    """CycleGAN (Zhu et al. 2017) once per variant (``{display name: CycleGANOptions overrides}``), measured at each
    iteration count in ``checkpoints``.

    At every checkpoint, on held-out images never trained on (``hold_out`` = photos, paintings): the mean L1 cycle
    reconstruction errors photo -> painting -> photo (``cycle_l1_photo``) and painting -> photo -> painting
    (``cycle_l1_painting``), in [0, 1] units, and the identity error (``identity_l1``: mean of |G_A(b) - b| and
    |G_B(a) - a|, what the identity loss of sec. 5.2 penalises). Images: ``photo``, ``fake_painting``,
    ``rec_photo``, ``painting``, ``fake_photo``, ``rec_painting``.

    Short runs stop long before the schedule's learning-rate decay; if ``base`` has fewer epochs than the last
    checkpoint needs, its constant-lr phase (``n_epochs``) is lengthened. Only the first ``limit_images`` training
    images of each domain are used.
    """
    photos_dir, paintings_dir = require_folder(photos_dir, "Photos"), require_folder(paintings_dir, "Paintings")
    n_photos, n_paintings = len(list_images(photos_dir)), len(list_images(paintings_dir))
    train_sizes = [n_photos - hold_out[0], n_paintings - hold_out[1]]
    if limit_images is not None:
        train_sizes = [min(limit_images, n) for n in train_sizes]
    iterations_per_epoch = max(1, max(train_sizes) // base.batch_size)
    runs = []
    for name, overrides in variants.items():
        options = replace(base, **overrides)
        needed = math.ceil(max(checkpoints) / iterations_per_epoch)
        if options.total_epochs < needed:
            options = replace(options, n_epochs=needed - options.n_epochs_decay)
        settings = {"lambda_cycle": options.lambda_cycle, "lambda_identity": options.lambda_identity}
        slug = re.sub(r"[^A-Za-z0-9.]+", "_", name).strip("_")
        folder = Path(runs_dir) / f"cyclegan_{slug}_{options_tag(options)}_n{limit_images}_h{hold_out[0]}-{hold_out[1]}"
        run = AblationRun(name, settings, folder)

        def train_to(iteration: int, options: cyclegan.CycleGANOptions = options, run: AblationRun = run
                     ) -> nntools.Experiment:
            return cyclegan.train_cyclegan(
                photos_dir, paintings_dir, run.output_dir, options, max_iterations=iteration,
                limit_images=limit_images, hold_out_photos=hold_out[0], hold_out_paintings=hold_out[1],
                checkpoint_every=max(10, max(checkpoints) // 4), log_every=max(1, max(checkpoints) // 60),
                device=device, progress=progress)

        run = _staged_run(run, checkpoints, train_to, _measure_cyclegan)
        lambda_cycle = options.lambda_cycle
        for entry in run.history:  # the logged cycle terms are weighted by lambda: add the plain L1
            if lambda_cycle > 0:
                entry["cycle_l1_A"] = entry["cycle_A"] / lambda_cycle
                entry["cycle_l1_B"] = entry["cycle_B"] / lambda_cycle
            entry["generators_total"] = sum(entry[k] for k in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B"))
        runs.append(run)
    return runs


def _measure_cyclegan(experiment: nntools.Experiment) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    model: cyclegan.CycleGANModel = experiment.model  # type: ignore[assignment]
    val_set = experiment.val_set
    photos = torch.stack([val_set.domain_a[i] for i in range(len(val_set.domain_a))])
    paintings = torch.stack([val_set.domain_b[i] for i in range(len(val_set.domain_b))])
    g_a, g_b = model.netG_A, model.netG_B  # translate() runs them in eval mode on their device
    with torch.no_grad():
        fake_paintings = translate(g_a, photos).cpu()
        rec_photos = translate(g_b, fake_paintings).cpu()
        fake_photos = translate(g_b, paintings).cpu()
        rec_paintings = translate(g_a, fake_photos).cpu()
        identity = 0.5 * (float((translate(g_a, paintings).cpu() - paintings).abs().mean())
                          + float((translate(g_b, photos).cpu() - photos).abs().mean()))
    metrics = {"cycle_l1_photo": float((rec_photos - photos).abs().mean()),
               "cycle_l1_painting": float((rec_paintings - paintings).abs().mean()),
               "identity_l1": identity}
    images = {"photo": photos, "fake_painting": fake_paintings, "rec_photo": rec_photos,
              "painting": paintings, "fake_photo": fake_photos, "rec_painting": rec_paintings}
    return metrics, images


# ------------------------------------------------------------------------------------------------- numbers
def checkpoint_rows(runs: Sequence[AblationRun]) -> list[dict[str, Any]]:
    """One row per (run, checkpoint): the run's name and settings, then the measured numbers."""
    return [{"run": run.name, **run.settings, **checkpoint} for run in runs for checkpoint in run.checkpoints]


def history_rows(runs: Sequence[AblationRun]) -> list[dict[str, Any]]:
    """One row per (run, logged training iteration): the training losses as logged."""
    return [{"run": run.name, **run.settings, **entry} for run in runs for entry in run.history]


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, digits: int = 5) -> Path:
    """:func:`figures.write_csv` with floats rounded to ``digits`` significant digits (the notebook's CSV files)."""
    return figures.write_csv(rows, path, digits)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], digits: int = 4) -> str:
    """A plain-text table of ``columns`` (floats with ``digits`` significant digits) for printing in notebooks."""
    def text(value: Any) -> str:
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)
    cells = [list(columns)] + [[text(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in cells]
    return "\n".join(lines[:1] + ["  ".join("-" * w for w in widths)] + lines[1:])


# ------------------------------------------------------------------------------------------------- figures
def plot_checkpoints(runs: Sequence[AblationRun], metrics: Mapping[str, str], title: str,
                     path: str | Path | None = None, logy: Sequence[str] = (), caption: str | None = None
                     ) -> plt.Figure:
    """One panel per held-out metric (``{key: axis label}``), one line per run, against training iterations."""
    def draw(axis: plt.Axes, key: str) -> None:
        for run in runs:
            x, y = run.series(key)
            axis.plot(x, y, marker="o", label=run.name)
    return _panels(metrics, draw, title, path, logy, caption)


def _panels(labels: Mapping[str, str], draw: Callable[[plt.Axes, str], None], title: str, path: str | Path | None,
            logy: Sequence[str], caption: str | None) -> plt.Figure:
    """One panel per ``{key: axis label}`` against training iterations; ``draw(axis, key)`` plots the lines."""
    figure, axes = plt.subplots(1, len(labels), figsize=(4.4 * len(labels), 3.5), squeeze=False)
    for axis, (key, label) in zip(axes[0], labels.items()):
        draw(axis, key)
        axis.set_xlabel("training iteration")
        axis.set_ylabel(label)
        axis.set_title(label)
        if key in logy:
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    if caption:
        figure.text(0.5, -0.02, caption, ha="center", va="top", fontsize=9, wrap=True)
    figure.tight_layout()
    return save_figure(figure, path)


def _smooth(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_training_losses(runs: Sequence[AblationRun], keys: Mapping[str, str], title: str,
                         path: str | Path | None = None, window: int = 5, logy: Sequence[str] = (),
                         caption: str | None = None) -> plt.Figure:
    """Logged training losses (``{key: axis label}``), moving average over ``window`` logged points, one line per
    run; a run that does not log a key (e.g. the unweighted cycle L1 at lambda = 0) has no line in that panel."""
    def draw(axis: plt.Axes, key: str) -> None:
        for run in runs:
            points = [(h["iteration"], h[key]) for h in run.history if key in h]
            if points:
                x, y = zip(*points)
                axis.plot(x, _smooth(list(y), window), label=run.name)
    return _panels(keys, draw, title, path, logy, caption)


def image_grid(images: Sequence[torch.Tensor], titles: Sequence[str], columns: int, suptitle: str,
               caption: str | None = None, path: str | Path | None = None, panel_size: float = 1.7) -> plt.Figure:
    """``imaging.show_images`` for small training crops: nearest-neighbour pixels, room for two-line titles, 100 dpi
    (the saved PNG stays well under 1 MB)."""
    return show_images(images, titles, suptitle, caption, columns, panel_size, path, interpolation="nearest",
                       title_fontsize=8, title_room=0.45, dpi=100)


def realtime_progress_figure(runs: Sequence[AblationRun], photo_index: int = 0, path: str | Path | None = None,
                             caption: str | None = None, panel_size: float = 1.7) -> plt.Figure:
    """Rows: runs (lambda_s); columns: the held-out photo, then its stylisation at each checkpoint."""
    images, titles = [], []
    for run in runs:
        iterations = sorted(run.images)
        images.append(run.images[iterations[0]]["photo"][photo_index])
        titles.append(f"held-out photo\n{run.name}")
        for iteration in iterations:
            images.append(run.images[iteration]["output"][photo_index])
            titles.append(f"{run.name}\niteration {iteration}")
    columns = 1 + max(len(run.images) for run in runs)
    return image_grid(images, titles, columns, "Real-time network: a held-out photo stylised at each checkpoint, "
                      "per lambda_s", caption, path, panel_size)


def realtime_final_figure(runs: Sequence[AblationRun], path: str | Path | None = None,
                          caption: str | None = None, panel_size: float = 1.9, count: int = 4) -> plt.Figure:
    """Rows: held-out photos; columns: the photo, then each run's stylisation at its last checkpoint."""
    finals = [run.images[max(run.images)] for run in runs]
    images, titles = [], []
    for i in range(min(count, len(finals[0]["photo"]))):
        images.append(finals[0]["photo"][i])
        titles.append("held-out photo")
        for run, final in zip(runs, finals):
            images.append(final["output"][i])
            titles.append(f"{run.name} (it. {max(run.images)})")
    return image_grid(images, titles, 1 + len(runs), "Real-time network: style weight lambda_s on held-out photos",
                      caption, path, panel_size)


def cyclegan_samples_figure(runs: Sequence[AblationRun], index: int = 0, path: str | Path | None = None,
                            caption: str | None = None, panel_size: float = 1.6) -> plt.Figure:
    """Rows: variants at their last checkpoint; columns: held-out photo -> painting -> photo, and
    painting -> photo -> painting, with each row's cycle errors (over all held-out images) in the titles."""
    columns = (("photo", "held-out photo"), ("fake_painting", "G_A: -> painting"), ("rec_photo", "G_B(G_A): cycle"),
               ("painting", "held-out painting"), ("fake_photo", "G_B: -> photo"), ("rec_painting", "G_A(G_B): cycle"))
    images, titles = [], []
    for run in runs:
        final = run.images[max(run.images)]
        metrics = run.final
        for key, label in columns:
            images.append(final[key][index])
            if key == "photo":
                label = f"{run.name}\n{label}"
            elif key == "rec_photo":
                label = f"{label}\nL1 {metrics['cycle_l1_photo']:.3f}"
            elif key == "rec_painting":
                label = f"{label}\nL1 {metrics['cycle_l1_painting']:.3f}"
            titles.append(label)
    return image_grid(images, titles, len(columns), "CycleGAN: lambda_cycle and the identity loss (held-out images)",
                      caption, path, panel_size)
