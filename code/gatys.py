"""Optimisation-based style transfer (Gatys, Ecker & Bethge, CVPR 2016) with the options of the reference
implementations (jcjohnson/neural-style, neural-style-pt, pystiche) and built-in multi-scale refinement.

    x* = argmin_x  alpha * L_content(x, p) + beta * L_style(x, a) + tv_weight * TV(x)         (Gatys eq. 7)

Layer names follow torchvision/PyTorch: ``relu4_2`` is the rectified output. Gatys et al. name layers after Caffe's
in-place ReLU blobs, so their "conv4_2" is our ``relu4_2`` and their style layers "conv1_1 ... conv5_1" are our
``relu1_1 ... relu5_1``; the pre-ReLU ``conv*`` outputs can be chosen too.

Weight convention (the paper's, with the normalised VGG19): L_content = 1/2 sum (F - P)^2 (eq. 1) and
E_l = 1/(4 N_l^2 M_l^2) sum (G - A)^2 (eq. 4), so alpha/beta = 1e-3 ... 1e-4 are the paper's ratios. The style
targets are Gram matrices per position (G_s / M_s, rescaled to the generated image's M_l), so a style image of any
size, or several blended, gives targets on one scale."""
from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal, Mapping, Sequence, get_args

import imaging
import torch
import torch.nn.functional as F
from imaging import resize_tensor
from losses import content_loss, gram_matrix, style_loss, total_variation_loss
from models import VGGFeatures, check_layers, layer_names
from runtime import (PRECISIONS, pick_device, precision_autocast, resolve_precision, return_large_cpu_buffers,
                     synchronize)
from tqdm.auto import tqdm

# Gatys et al. (2016), sec. 2-3: content at conv4_2, style at conv1_1..conv5_1 with w_l = 1/5 (Caffe names).
PAPER_CONTENT_LAYERS = ("relu4_2",)


PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


Optimizer = Literal["lbfgs", "adam", "sgd", "rmsprop", "adagrad"]
OPTIMIZERS = get_args(Optimizer)


DEFAULT_LEARNING_RATES = {"lbfgs": 1.0, "adam": 0.02, "sgd": 1e-3, "rmsprop": 0.005, "adagrad": 0.05}


# The optimisers see the objective rescaled to start at this value (the reported losses stay unscaled): the paper's
# losses can be ~1 with gradients ~1e-6 per pixel, where L-BFGS's curvature test (y's > 1e-10) would reject every
# update and silently fall back to tiny gradient steps; SGD's step size also depends on the scale.
OBJECTIVE_START = 1e4


SnapshotCallback = Callable[[int, torch.Tensor, dict], None]


@dataclass
class GatysOptions:
    """Every knob of the optimisation; defaults give a clearly stylised result at 512 px in 300 L-BFGS iterations.

    Balance: L_content (eq. 1) is a sum over pixels, E_l (eq. 4) is normalised, so the same alpha/beta stylises
    more at smaller sizes. Measured from content init, 100 L-BFGS iterations, 256 px, Starry Night: beta 1e5 barely
    changes the photo, 1e6 gives visible strokes, 1e7 strong swirls with the content intact, 1e8 mostly style.
    The default 1e7 at 512 px equals 2.5e6 at 256 px (content loss grows with the pixel count).
    """

    content_weight: float = 1.0  # alpha
    style_weight: float = 1e7  # beta: alpha / beta = 1e-7 from content init (see the class docstring)
    tv_weight: float = 0.0
    content_layers: Sequence[str] | Mapping[str, float] = PAPER_CONTENT_LAYERS
    style_layers: Sequence[str] | Mapping[str, float] = PAPER_STYLE_LAYERS  # equal weights 1/len if a sequence
    size: int = 512  # longest side of the output
    scales: Sequence[int] | None = None  # multi-scale: e.g. (256, 512); overrides size
    iterations: int | Sequence[int] = 300  # per scale when a sequence
    optimizer: Optimizer = "lbfgs"  # torch.optim algorithm (the paper: L-BFGS)
    learning_rate: float | None = None  # None: DEFAULT_LEARNING_RATES[optimizer]
    init: Literal["content", "noise", "style"] = "content"  # "content", "noise" (the paper's white noise) or "style"
    style_scale: float = 1.0  # style image longest side = style_scale * output longest side
    style_blend_weights: Sequence[float] | None = None  # several style images; normalised to sum to 1
    preserve_colors: Literal["luminance", "color_match"] | None = None  # None, "luminance" (YIQ luminance-only transfer) or "color_match"
    pooling: str = "max"
    weights: str = "normalised"  # "normalised", "imagenet" or "torchvision" (online)
    arch: str = "vgg19"
    precision: str = "auto"  # "auto" (bf16 where native, see runtime.resolve_precision), "fp32", "bf16" or "fp16"
    # autocast for the VGG passes; losses and Gram matrices stay fp32
    channels_last: bool = True
    project_pixels: bool = True  # *ours*: keep x in [0, 1] (see optimise_pixels), so the saved image is the one
    # optimised (neural-style clamps only the saved image). Peer objective, 256 px, bf16, 200 L-BFGS iterations from
    # the photo: the saved image's loss 2.22e6 against 2.52e6 unprojected, which the projected run passes at ~82
    seed: int = 0
    snapshot_every: int = 0  # call ``callback`` every N iterations (0: never)
    progress: bool = True
    device: str | None = None  # None: CUDA, then MPS, then CPU

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError (TypeError for a wrong type) naming the offending parameter."""
        for name in ("content_weight", "style_weight", "tv_weight", "style_scale"):
            imaging.number(name, getattr(self, name))
        imaging.number("learning_rate", self.learning_rate, positive=True, allow_none=True)
        imaging.integer("size", self.size, 32)
        for value in ([self.iterations] if isinstance(self.iterations, numbers.Integral) or not isinstance(
                self.iterations, (list, tuple)) else self.iterations):
            imaging.integer("iterations", value, 1)
        for value in self.scales or []:
            imaging.integer("scales", value, 32)
        imaging.integer("snapshot_every", self.snapshot_every, 0)
        if isinstance(self.style_layers, (list, tuple, dict)) and not self.style_layers and self.style_weight > 0:
            raise ValueError("style_layers is empty but style_weight > 0: the style loss would be 0 (give at least "
                             "one layer, or style_weight=0 for a content reconstruction)")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0 or not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.content_weight == 0 and self.style_weight == 0:
            raise ValueError("content_weight and style_weight are both 0: nothing to optimise")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.init not in ("content", "noise", "style"):
            raise ValueError(f"init must be 'content', 'noise' or 'style', got {self.init!r}")
        if self.preserve_colors not in (None, "luminance", "color_match"):
            raise ValueError(f"preserve_colors must be None, 'luminance' or 'color_match', got {self.preserve_colors!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(repr(p) for p in PRECISIONS)}, "
                             f"got {self.precision!r}")
        if self.style_scale <= 0:
            raise ValueError(f"style_scale must be > 0, got {self.style_scale}")
        for size in self.sizes():
            if size < 32:
                raise ValueError(f"image sizes must be at least 32 px, got {size}")
        if any(i < 1 for i in self.iterations_per_scale()):
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        check_layers(self.content_layer_weights(), self.arch, "content_layers")
        check_layers(self.style_layer_weights(), self.arch, "style_layers")
        for weights in (self.content_layer_weights(), self.style_layer_weights()):
            if any(w < 0 for w in weights.values()):
                raise ValueError(f"per-layer weights must be >= 0, got {weights}")

    def sizes(self) -> list[int]:
        return list(self.scales) if self.scales else [self.size]

    def iterations_per_scale(self) -> list[int]:
        sizes = self.sizes()
        if isinstance(self.iterations, int):
            return [self.iterations] * len(sizes)
        if len(self.iterations) != len(sizes):
            raise ValueError(f"iterations has {len(self.iterations)} entries but there are {len(sizes)} scales")
        return list(self.iterations)

    def content_layer_weights(self) -> dict[str, float]:
        return _layer_weights(self.content_layers)

    def style_layer_weights(self) -> dict[str, float]:
        return _layer_weights(self.style_layers)


def style_weight_for_size(size: int, weight_at_512: float = 1e7) -> float:
    """beta giving the same balance at ``size`` as ``weight_at_512`` at 512 px.

    L_content (eq. 1) sums over the M_l positions of relu4_2 while E_l (eq. 4) is normalised by M_l^2, so the
    content term grows with the pixel count and beta must grow with it: beta(size) = beta(512) * (size / 512)^2.
    """
    return weight_at_512 * (size / 512) ** 2


def _layer_weights(layers: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(layers, str):
        layers = [layers]
    if isinstance(layers, Mapping):
        return {name: float(weight) for name, weight in layers.items()}
    return {name: 1.0 / len(layers) for name in layers} if layers else {}


@dataclass
class GatysResult:
    """The stylised image (1, 3, H, W) in [0, 1], the loss history (one dict per evaluation) and timings.

    ``sizes``: the (H, W) each scale really ran at (smaller than asked when the memory check downscaled);
    ``precision``: the autocast precision that ran ("fp32" where the device lacks the one asked for).
    """

    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    options: dict = field(default_factory=dict)
    device: str = "cpu"
    sizes: list[tuple[int, int]] = field(default_factory=list)
    precision: str = "fp32"

    @property
    def final_loss(self) -> float:
        return self.history[-1]["total"]


def activation_bytes(height: int, width: int, deepest_layer: str, arch: str = "vgg19") -> int:
    """Approximate memory of one forward + backward pass, fp32: every layer output kept for the backward pass, plus
    the gradients in flight (at most two of the largest layer's size: the one back-propagated and its input's).

    Checked against the CPU peak RSS of ``bench/bench_gatys.py`` (fp32, 256 -> 512 px: +619 MiB for 3/4 of the
    512 x 384 pixel count, i.e. ~635 MiB of activations at 512 x 384 besides the L-BFGS history): this gives
    554 MiB; counting every layer twice (value + gradient) gave 915 MiB and shrank images that fit.
    """
    total, largest, h, w, channels = 0, 0, height, width, 3
    for name in layer_names(arch):
        if name.startswith("conv"):
            channels = 64 * 2 ** min(int(name[4]) - 1, 3)
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
        total += channels * h * w
        largest = max(largest, channels * h * w)
        if name == deepest_layer:
            break
    return (total + 2 * largest) * 4


LBFGS_HISTORY = 100  # L-BFGS history_size (neural-style's default)
LBFGS_SPIKE = 2.0  # *ours*: a loss above this x the lowest so far restarts L-BFGS from the best image
LBFGS_MAX_RESTARTS = 10  # *ours*: more restarts in a row than this raise FloatingPointError


def optimizer_bytes(height: int, width: int, optimizer: str, history_size: int = LBFGS_HISTORY) -> int:
    """Memory of the optimiser's state over a (1, 3, H, W) fp32 image, gradient included: L-BFGS keeps
    ``history_size`` pairs (s, y), the direction and the previous gradient (~1.9 GB at 1024 x 768 with history 100);
    Adam two moments; RMSprop and Adagrad one accumulator."""
    copies = {"lbfgs": 2 * history_size + 3, "adam": 3, "sgd": 1, "rmsprop": 2, "adagrad": 2}[optimizer]
    return copies * 3 * height * width * 4


def available_memory(device: torch.device) -> int:
    """Bytes the run can use on the device. CUDA: free memory (cudaMemGetInfo, with the device index that torch
    <= 2.4 requires) plus what PyTorch's caching allocator holds but does not use (it is reused, not lost);
    otherwise available system RAM."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return torch.cuda.mem_get_info(index)[0] + cached
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def fit_size_to_memory(size: int, aspect: float, deepest_layer: str, arch: str, device: torch.device,
                       optimizer: str = "lbfgs") -> int:
    """Largest longest side <= ``size`` whose activations and optimiser state fit in 60 % of the available memory
    (warns when it downscales)."""
    budget = 0.6 * available_memory(device)

    def needed(side: int) -> int:
        long, short = side, max(1, round(side * aspect))
        return activation_bytes(short, long, deepest_layer, arch) + optimizer_bytes(short, long, optimizer)

    fitted = size
    while fitted > 64 and needed(fitted) > budget:
        fitted = int(fitted * 0.9)
    if fitted != size:
        warnings.warn(
            f"Image size {size} px needs about {needed(size) / 2**30:.1f} GiB on {device}, more than is free "
            f"({budget / 0.6 / 2**30:.1f} GiB): downscaled to {fitted} px.",
            stacklevel=3,
        )
    return fitted


def make_optimizer(name: str, image: torch.Tensor, learning_rate: float | None,
                   history_size: int = LBFGS_HISTORY) -> torch.optim.Optimizer:
    """The optimiser over the image pixels; L-BFGS takes one iteration per ``step`` (its history persists)."""
    lr = DEFAULT_LEARNING_RATES[name] if learning_rate is None else learning_rate
    if name == "lbfgs":
        return torch.optim.LBFGS([image], lr=lr, max_iter=1, history_size=history_size, tolerance_grad=-1,
                                 tolerance_change=-1)
    optimizer_class = {
        "adam": torch.optim.Adam,
        "sgd": torch.optim.SGD,
        "rmsprop": torch.optim.RMSprop,
        "adagrad": torch.optim.Adagrad,
    }[name]
    return optimizer_class([image], lr=lr)


Objective = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def optimise_pixels(objective: Objective, image: torch.Tensor, iterations: int, optimizer: str = "lbfgs",
                    learning_rate: float | None = None, history_size: int = LBFGS_HISTORY,
                    start_at: float | None = OBJECTIVE_START,
                    on_iteration: Callable[[torch.Tensor, dict[str, float]], None] | None = None,
                    project: bool = False) -> torch.Tensor:
    """Minimise ``objective(x)["total"]`` over the pixels x from ``image``, one loss evaluation per iteration
    (Gatys et al. sec. 3; L-BFGS without line search, as in neural-style). Returns x (detached, not clamped).

    ``start_at``: the optimiser sees the total rescaled to start at this value (see ``OBJECTIVE_START``; None: as
    is). ``on_iteration(x, losses)`` gets the unscaled losses evaluated in each iteration, as floats. Other
    optimisers than L-BFGS keep x in [0, 1]; with ``project`` L-BFGS does too: the gradient is zeroed where x is at a
    bound and the descent would leave [0, 1], and x is clamped after every step (a projected L-BFGS; clamping alone
    keeps pushing at the bounds and stalls on a box-constrained quadratic, see the tests).

    Without a line search L-BFGS can diverge (seen at 256 px from the content image: the loss jumped from 7.2e5 to
    3.1e6 at iteration 118 and overflowed at 127). So when an evaluated loss is not finite or above
    ``LBFGS_SPIKE`` x the lowest so far, x goes back to the image of that lowest loss and L-BFGS restarts with an empty
    history and half the learning rate per restart in a row (full again once the loss improves);
    ``losses["restarts"]`` counts them. More than ``LBFGS_MAX_RESTARTS`` restarts in a row, or a non-finite loss with
    another optimiser, raises FloatingPointError."""
    image = image.detach().clone().requires_grad_(True)
    optim = make_optimizer(optimizer, image, learning_rate, history_size)
    guard = optimizer == "lbfgs"
    latest: dict[str, torch.Tensor] = {}
    scale: list[float] = []
    base_lr = optim.param_groups[0]["lr"]
    best_total, best_image, restarts, in_a_row = math.inf, image.detach().clone(), 0, 0
    # the x whose loss the step evaluates; two buffers swapped (no new image allocated per iteration)
    evaluated = torch.empty_like(best_image) if guard else None

    def closure() -> torch.Tensor:
        optim.zero_grad(set_to_none=True)
        losses = objective(image)
        if not scale:  # fixed at the first evaluation
            scale.append(1.0 if start_at is None else start_at / max(float(losses["total"].detach()), 1e-30))
        scaled = losses["total"] * scale[0] if start_at is not None else losses["total"]
        scaled.backward()
        if project and image.grad is not None:  # the active bounds: no descent direction points out of [0, 1]
            with torch.no_grad():
                image.grad[((image <= 0) & (image.grad > 0)) | ((image >= 1) & (image.grad < 0))] = 0
        latest.update(losses)
        return scaled

    for iteration in range(1, iterations + 1):
        if guard:
            evaluated.copy_(image.detach())
        optim.step(closure)
        if optimizer != "lbfgs" or project:
            with torch.no_grad():
                image.clamp_(0, 1)
        record = {k: float(v.detach()) for k, v in latest.items()}
        total = record["total"]
        if guard and math.isfinite(total) and total < best_total:
            best_total, best_image, evaluated, in_a_row = total, evaluated, best_image, 0
            optim.param_groups[0]["lr"] = base_lr  # back to full steps once the loss improves
        elif guard and (not math.isfinite(total) or total > LBFGS_SPIKE * best_total):
            restarts, in_a_row = restarts + 1, in_a_row + 1
            if in_a_row > LBFGS_MAX_RESTARTS:
                raise FloatingPointError(
                    f"L-BFGS diverged {in_a_row} times in a row (loss {total:.4g} at iteration {iteration}, lowest "
                    f"{best_total:.4g}); lower the learning rate (now {base_lr}).")
            with torch.no_grad():
                image.copy_(best_image)
            # half the step for each restart in a row, so the first step of a fresh L-BFGS cannot repeat the spike
            optim = make_optimizer(optimizer, image, base_lr / 2 ** in_a_row, history_size)
        if not guard and not math.isfinite(total):
            raise FloatingPointError(
                f"The loss became {total} at iteration {iteration}; lower the learning rate "
                f"(now {optim.param_groups[0]['lr']}) or use precision='fp32'."
            )
        if guard:
            record["restarts"] = float(restarts)
        if on_iteration is not None:
            on_iteration(image, record)
    return image.detach()


class StyleTransfer:
    """Holds the VGG and the targets; ``run`` optimises an image. Reuse one instance for many runs/ablations."""

    def __init__(self, options: GatysOptions | None = None, vgg: VGGFeatures | None = None) -> None:
        self.options = options or GatysOptions()
        self.options.validate()
        self.device = pick_device(self.options.device)
        # what runs here ("auto": bf16 where native, else fp32; a warning where the one asked for does not run)
        self.precision = resolve_precision(self.options.precision, self.device)
        if self.device.type == "cpu":  # about 4 % lower peak memory for L-BFGS at 512 px (see the function)
            return_large_cpu_buffers()
        layers = list(self.options.content_layer_weights()) + list(self.options.style_layer_weights())
        order = layer_names(self.options.arch)
        self.deepest_layer = max(layers, key=order.index)
        if vgg is None or not set(layers) <= set(vgg.body._modules) or vgg.pooling != self.options.pooling:
            vgg = VGGFeatures(layers, self.options.arch, self.options.weights, self.options.pooling)
        self.vgg = vgg.to(self.device)
        if self.options.channels_last:
            self.vgg = self.vgg.to(memory_format=torch.channels_last)
        self.layers = layers

    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """VGG features of the requested layers, under the chosen precision and memory format."""
        if self.options.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with precision_autocast(self.precision, self.device):
            return self.vgg(image, self.layers)

    @torch.no_grad()
    def style_targets(self, styles: Sequence[torch.Tensor], blend: Sequence[float]) -> dict[str, torch.Tensor]:
        """Blended Gram matrices per position, sum_i w_i G_i / M_i, computed once under no_grad."""
        targets: dict[str, torch.Tensor] = {}
        for style, weight in zip(styles, blend):
            features = self.features(style)
            for name in self.options.style_layer_weights():
                per_position = gram_matrix(features[name]) / (features[name].shape[2] * features[name].shape[3])
                targets[name] = targets.get(name, 0) + weight * per_position
        return targets

    def losses(
        self, image: torch.Tensor, content_targets: dict[str, torch.Tensor], style_targets: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Weighted content, style and TV losses and their total for ``image`` (Gatys eq. 7)."""
        options = self.options
        features = self.features(image)
        content = sum(
            (w * content_loss(features[n], content_targets[n]) for n, w in options.content_layer_weights().items()),
            torch.zeros((), device=image.device),
        )
        # the targets are Gram matrices per position: rescaled to this image's M_l (the module docstring)
        target_grams = {name: target * (features[name].shape[2] * features[name].shape[3])
                        for name, target in style_targets.items()}
        style = style_loss(features, target_grams, options.style_layer_weights())
        tv = total_variation_loss(image) if options.tv_weight > 0 else torch.zeros((), device=image.device)
        total = options.content_weight * content + options.style_weight * style + options.tv_weight * tv
        return {"total": total, "content": content, "style": style, "tv": tv}

    def run(
        self,
        content: torch.Tensor,
        styles: torch.Tensor | Sequence[torch.Tensor],
        callback: SnapshotCallback | None = None,
    ) -> GatysResult:
        """Stylise ``content`` (1, 3, H, W) in [0, 1] with one or several style images (blended)."""
        options = self.options
        styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
        if not styles:
            raise ValueError("at least one style image is needed")
        for name, image in [("content", content)] + [(f"style[{i}]", s) for i, s in enumerate(styles)]:
            imaging.image_tensor(f"{name} image", image)
            if image.dim() != 4:
                raise ValueError(f"{name} image must have shape (1, 3, H, W), got {tuple(image.shape)}")
        blend = list(options.style_blend_weights or [1.0] * len(styles))
        if len(blend) != len(styles) or any(w < 0 for w in blend) or sum(blend) <= 0:
            raise ValueError(f"style_blend_weights must be {len(styles)} non-negative numbers with a positive sum, got {blend}")
        blend = [w / sum(blend) for w in blend]
        torch.manual_seed(options.seed)
        content_full = content.to(self.device)
        styles_full = [s.to(self.device) for s in styles]
        if options.preserve_colors == "color_match":
            styles_full = [imaging.match_color(s, content_full) for s in styles_full]
        elif options.preserve_colors == "luminance":
            content_y = imaging.luminance(content_full)
            styles_full = [imaging.match_luminance(imaging.luminance(s), content_y).clamp(0, 1).expand(-1, 3, -1, -1) for s in styles_full]
            content_full = content_y.expand(-1, 3, -1, -1)

        history: list[dict[str, float]] = []
        start = time.perf_counter()
        image: torch.Tensor | None = None
        aspect = content.shape[2] / content.shape[3] if content.shape[3] >= content.shape[2] else content.shape[3] / content.shape[2]
        sizes = [fit_size_to_memory(s, aspect, self.deepest_layer, options.arch, self.device, options.optimizer)
                 for s in options.sizes()]
        total_iterations = sum(options.iterations_per_scale())
        bar = tqdm(total=total_iterations, desc=f"Gatys style transfer ({self.precision})", disable=not options.progress,
                   leave=False)
        ran_sizes: list[tuple[int, int]] = []
        for size, iterations in zip(sizes, options.iterations_per_scale()):
            content_scaled = resize_tensor(content_full, size)
            ran_sizes.append(tuple(content_scaled.shape[-2:]))
            style_size = max(32, round(size * options.style_scale))
            style_scaled = [resize_tensor(s, style_size) for s in styles_full]
            with torch.no_grad():
                # keep only the content layers (the other features would stay alive through the optimisation)
                content_targets = {n: f.detach().float() for n, f in self.features(content_scaled).items()
                                   if n in options.content_layer_weights()}
            style_targets = self.style_targets(style_scaled, blend)
            image = self._initial_image(content_scaled, style_scaled[0], image)
            image = self._optimise(image, content_targets, style_targets, iterations, history, bar, callback)
        bar.close()
        result = image.detach().clamp(0, 1)
        if options.preserve_colors == "luminance":
            original = resize_tensor(content.to(self.device), tuple(result.shape[-2:]))
            result = imaging.combine_luminance(result, original)
        synchronize(self.device)
        return GatysResult(result.cpu(), history, time.perf_counter() - start, asdict(options), str(self.device),
                           ran_sizes, self.precision)

    def _initial_image(
        self, content: torch.Tensor, style: torch.Tensor, previous: torch.Tensor | None
    ) -> torch.Tensor:
        if previous is not None:  # multi-scale: upsample the coarser result
            return F.interpolate(previous.detach(), size=content.shape[-2:], mode="bilinear", align_corners=False)
        if self.options.init == "content":
            return content.clone()
        if self.options.init == "noise":
            return torch.rand(content.shape, device=content.device)
        return F.interpolate(style, size=content.shape[-2:], mode="bilinear", align_corners=False)

    def _optimise(
        self,
        image: torch.Tensor,
        content_targets: dict[str, torch.Tensor],
        style_targets: dict[str, torch.Tensor],
        iterations: int,
        history: list[dict[str, float]],
        bar,
        callback: SnapshotCallback | None,
    ) -> torch.Tensor:
        """:func:`optimise_pixels` on Gatys eq. 7 at one scale; appends to ``history``, calls ``callback``."""
        every = self.options.snapshot_every

        def report(image: torch.Tensor, record: dict[str, float]) -> None:
            history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['total']:.4g}")
            if callback is not None and every and len(history) % every == 0:
                callback(len(history), image.detach().clamp(0, 1).cpu(), record)

        return optimise_pixels(lambda x: self.losses(x, content_targets, style_targets), image, iterations,
                               self.options.optimizer, self.options.learning_rate, on_iteration=report,
                               project=self.options.project_pixels)


def stylize_gatys(
    content: torch.Tensor,
    styles: torch.Tensor | Sequence[torch.Tensor],
    options: GatysOptions | None = None,
    callback: SnapshotCallback | None = None,
    **overrides,
) -> GatysResult:
    """One-call Gatys style transfer: ``stylize_gatys(content, style, size=512, style_weight=1e4)``."""
    options = options or GatysOptions()
    if overrides:
        unknown = [k for k in overrides if k not in GatysOptions.__dataclass_fields__]
        if unknown:
            raise TypeError(f"Unknown option(s) {unknown}; valid: {sorted(GatysOptions.__dataclass_fields__)}")
        options = GatysOptions(**{**asdict(options), **overrides})
    return StyleTransfer(options).run(content, styles, callback)


# Gatys, Ecker & Bethge (NIPS 2015), "Texture Synthesis Using Convolutional Neural Networks": conv1_1 and pool1..pool4
# (Caffe names); with our ReLU outputs, the first ReLU of each block: the style layers of the 2016 paper.
TEXTURE_LAYERS = PAPER_STYLE_LAYERS


def synthesize_texture(
    style_image: torch.Tensor,
    size: int | tuple[int, int],
    style_layers: Sequence[str] | Mapping[str, float] = TEXTURE_LAYERS,
    iterations: int = 300,
    **overrides,
) -> GatysResult:
    """A new texture of ``size`` (longest side, or (H, W)) with the Gram statistics of ``style_image``: the style
    loss alone (Gatys eq. 5, no content term), optimised with L-BFGS from white noise (Gatys et al. 2015). The
    output may be larger than the texture, which is used at its own resolution (its features keep their scale);
    ``overrides`` are other ``GatysOptions`` (``seed``, ``pooling``, ``device``, ``progress`` ...)."""
    if style_image.dim() != 4 or style_image.shape[:2] != (1, 3):
        raise ValueError(f"style_image must have shape (1, 3, H, W), got {tuple(style_image.shape)}")
    height, width = (size, size) if isinstance(size, int) else size
    if min(height, width) < 32:
        raise ValueError(f"size must be at least 32 px, got {size}")
    longest = max(height, width)
    options = GatysOptions(**{"content_weight": 0.0, "style_weight": 1.0, "content_layers": (),
                              "style_layers": style_layers, "size": longest, "iterations": iterations, "init": "noise",
                              "style_scale": max(style_image.shape[-2:]) / longest, **overrides})
    canvas = torch.zeros(1, 3, height, width)  # only its shape is used (content weight 0)
    return StyleTransfer(options).run(canvas, style_image)
