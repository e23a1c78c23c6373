"""Held-out evaluation of the trained models: what a grader would see, as numbers.

* :func:`checkerboard_index`: the mean magnitude of an image's spectrum on its Nyquist row and column over that of
  the row and column 3 frequency bins inside. Transposed convolutions with stride 2 leave a period-2 pattern
  (Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016) that lifts the Nyquist bins;
  natural images and real paintings score about 1.
* :func:`normalisation_spikes`: how far the input of each instance normalisation of a generator strays from its
  channel's statistics (largest |z| and where). A generator can learn a strong local spike that dominates a channel's
  mean and variance and so rescales the rest of the map; the spike comes out as a blob ("droplet", Karras et al.,
  "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020, sec. 2.1).
* :class:`PaintingProbe`: a linear classifier (logistic regression) on VGG19 channel means and standard deviations
  at relu1_1..relu4_1 (the statistics AdaIN and Gram-matrix style losses use), fit on training photos against
  training paintings. It says whether a generated "painting" has the feature statistics of paintings.
* :func:`evaluate_cyclegan`: cycle L1 both ways (Zhu et al. eq. 2 without the weight), the probe's verdict on the
  generated images, and the checkerboard index of real and generated images, on held-out images."""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import runtime
import torch
import torch.nn.functional as F
import weights
from cyclegan import CycleGANModel, CycleGANOptions, build_generator, generator_input, load_generator, translate
from gatys import optimise_pixels
from imaging import domain_files, load_image, split_held_out
from losses import PerceptualLoss, cycle_consistency_loss, gram_matrix
from models import TransformerNet, VGGFeatures
from realtime import RealtimeOptions, stylize
from torch import nn
from tqdm.auto import tqdm

PROBE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


CHECKERBOARD_INSET = 3


def checkerboard_index(image: torch.Tensor, inset: int = CHECKERBOARD_INSET) -> float:
    """Spectral checkerboard index of an RGB image (3, H, W) or (1, 3, H, W) in [0, 1].

    On the luminance (Rec. 601) with its mean removed and cropped to even H and W, with F its 2-D DFT:
    mean(|F| on row H/2 and column W/2) / mean(|F| on rows H/2 +- inset and columns W/2 +- inset).
    About 1 for images whose spectrum falls smoothly to the Nyquist frequency; above 1 when a period-2 pattern
    (the checkerboard of stride-2 transposed convolutions) adds energy there.
    """
    if image.dim() == 4:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"checkerboard_index expects an RGB image (3, H, W), got {tuple(image.shape)}")
    height, width = (image.shape[1] // 2) * 2, (image.shape[2] // 2) * 2
    if min(height, width) < 4 * inset:
        raise ValueError(f"image too small for the checkerboard index: {height}x{width}, need >= {4 * inset} px")
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    luminance = torch.einsum("c,chw->hw", weights, image[:, :height, :width].double())
    spectrum = torch.fft.fft2(luminance - luminance.mean()).abs()
    half_h, half_w = height // 2, width // 2
    nyquist = torch.cat([spectrum[half_h, :], spectrum[:, half_w]]).mean()
    inside = torch.cat([spectrum[half_h - inset, :], spectrum[half_h + inset, :],
                        spectrum[:, half_w - inset], spectrum[:, half_w + inset]]).mean()
    return float(nyquist / inside)


@dataclass(frozen=True)
class NormalisationSpike:
    """The largest standardised value at the input of one instance normalisation: ``z`` = (a - mean) / std over
    the channel's map (population std, as InstanceNorm2d), its ``channel``, and where it is (``row``, ``column`` as
    fractions of the map's height and width, so maps of every resolution compare with the output image)."""
    layer: str
    z: float
    channel: int
    row: float
    column: float


@torch.no_grad()
def normalisation_spikes(generator: nn.Module, image01: torch.Tensor) -> list[NormalisationSpike]:
    """:class:`NormalisationSpike` of every ``nn.InstanceNorm2d`` of ``generator`` (in forward order) when it
    translates the RGB image ``image01`` in [0, 1] ((3, H, W) or (1, 3, H, W); prepared by
    :func:`cyclegan.generator_input` as :func:`cyclegan.translate` does, without autocast). A single outlier among N
    values has z = sqrt(N - 1) at most; a layer whose z is far above its neighbours' carries a local spike, and a blob
    in the output sits where the spike is."""
    image = image01 if image01.dim() == 4 else image01[None]
    spikes: list[NormalisationSpike] = []

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            maps = inputs[0][0].float()
            z = ((maps - maps.mean((1, 2), keepdim=True)) / maps.std((1, 2), unbiased=False, keepdim=True)
                 .clamp_min(1e-12)).abs().flatten(1)
            per_channel, where = z.max(1)
            channel = int(per_channel.argmax())
            height, width = maps.shape[1:]
            spikes.append(NormalisationSpike(name, float(per_channel[channel]), channel,
                                             int(where[channel]) // width / height,
                                             int(where[channel]) % width / width))
        return hook

    image = generator_input(generator, image)
    handles = [module.register_forward_hook(record(name)) for name, module in generator.named_modules()
               if isinstance(module, nn.InstanceNorm2d)]
    try:
        generator(image)
    finally:
        for handle in handles:
            handle.remove()
    return spikes


@torch.no_grad()
def channel_statistics(vgg: nn.Module, images: Sequence[torch.Tensor], layers: Sequence[str] = PROBE_LAYERS
                       ) -> torch.Tensor:
    """(N, D) features: per-channel mean and standard deviation of each image's VGG activations at ``layers``."""
    device = next(vgg.buffers()).device
    rows = []
    for image in images:
        batch = image.unsqueeze(0) if image.dim() == 3 else image
        features = vgg(batch.to(device, torch.float32))
        parts = []
        for layer in layers:
            flat = features[layer].float().flatten(2)
            parts += [flat.mean(-1), flat.std(-1)]
        rows.append(torch.cat(parts, 1).cpu())
    return torch.cat(rows, 0).double()


@dataclass
class PaintingProbe:
    """Logistic regression p(painting | x) = sigmoid(w . (x - mu) / sigma + b) on :func:`channel_statistics`.

    Fit by L-BFGS on the class-balanced, L2-regularised log-loss; ``mean``/``scale`` standardise the features.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    layers: tuple[str, ...] = PROBE_LAYERS

    @classmethod
    def fit(cls, photo_features: torch.Tensor, painting_features: torch.Tensor, l2: float = 1e-2,
            layers: Sequence[str] = PROBE_LAYERS) -> "PaintingProbe":
        """Fit on (N_photo, D) and (N_painting, D) features; each class weighs half of the loss."""
        if len(photo_features) == 0 or len(painting_features) == 0:
            raise ValueError("PaintingProbe.fit needs at least one photo and one painting")
        features = torch.cat([photo_features, painting_features]).double()
        labels = torch.cat([torch.zeros(len(photo_features)), torch.ones(len(painting_features))]).double()
        sample_weight = torch.where(labels > 0, 0.5 / len(painting_features), 0.5 / len(photo_features))
        mean, scale = features.mean(0), features.std(0).clamp_min(1e-8)
        standard = (features - mean) / scale
        weight = torch.zeros(features.shape[1], dtype=torch.float64, requires_grad=True)
        bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, tolerance_grad=1e-10,
                                      line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            logits = standard @ weight + bias
            loss = (sample_weight * F.binary_cross_entropy_with_logits(logits, labels, reduction="none")).sum()
            loss = loss + 0.5 * l2 * weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return cls(weight.detach(), bias.detach(), mean, scale, tuple(layers))

    def painting_probability(self, features: torch.Tensor) -> torch.Tensor:
        """p(painting) for each row of ``features`` (N, D)."""
        return torch.sigmoid(((features.double() - self.mean) / self.scale) @ self.weight + self.bias)

    def fraction_paintings(self, features: torch.Tensor) -> float:
        """Fraction of rows called paintings (p > 1/2)."""
        return float((self.painting_probability(features) > 0.5).double().mean())


def fit_probe(vgg: nn.Module, photos: Sequence[torch.Tensor], paintings: Sequence[torch.Tensor]) -> PaintingProbe:
    """:class:`PaintingProbe` fit on the channel statistics of two sets of images."""
    return PaintingProbe.fit(channel_statistics(vgg, photos), channel_statistics(vgg, paintings))


@torch.no_grad()
def evaluate_cyclegan(photo2painting: nn.Module, painting2photo: nn.Module, held_photos: Sequence[torch.Tensor],
                      held_paintings: Sequence[torch.Tensor], probe: PaintingProbe, vgg: nn.Module
                      ) -> dict[str, float]:
    """The held-out numbers of the CycleGAN targets, for images already loaded at the evaluation size.

    ``cycle_l1_photo`` = mean |F(G(x)) - x| over photos x (in [0, 1] units), ``cycle_l1_painting`` the reverse;
    ``generated_paintings_called_paintings`` and ``generated_photos_called_photos`` from the probe (with the real
    held-out images' rates as the probe's own accuracy), and the probe's mean probability of the right class for the
    generated images (``..._mean_p``: shows progress while no image crosses 1/2); checkerboard indices averaged over
    each set.
    """
    fake_paintings = [translate(photo2painting, x) for x in held_photos]
    fake_photos = [translate(painting2photo, y) for y in held_paintings]
    cycle_photo = [float((translate(painting2photo, fake) - x).abs().mean()) for fake, x in zip(fake_paintings, held_photos)]
    cycle_painting = [float((translate(photo2painting, fake) - y).abs().mean())
                      for fake, y in zip(fake_photos, held_paintings)]

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    features = {name: channel_statistics(vgg, images, probe.layers)  # once per set: the VGG passes are the cost
                for name, images in (("fake_paintings", fake_paintings), ("fake_photos", fake_photos),
                                     ("paintings", held_paintings), ("photos", held_photos))}

    def called_paintings(name: str) -> float:
        return probe.fraction_paintings(features[name])

    def mean_p_painting(name: str) -> float:
        return float(probe.painting_probability(features[name]).mean())

    return {
        "cycle_l1_photo": mean(cycle_photo),
        "cycle_l1_painting": mean(cycle_painting),
        "generated_paintings_called_paintings": called_paintings("fake_paintings"),
        "generated_photos_called_photos": 1.0 - called_paintings("fake_photos"),
        "generated_paintings_mean_p": mean_p_painting("fake_paintings"),
        "generated_photos_mean_p": 1.0 - mean_p_painting("fake_photos"),
        "real_paintings_called_paintings": called_paintings("paintings"),
        "real_photos_called_photos": 1.0 - called_paintings("photos"),
        "checkerboard_generated_paintings": mean([checkerboard_index(x) for x in fake_paintings]),
        "checkerboard_generated_photos": mean([checkerboard_index(x) for x in fake_photos]),
        "checkerboard_real_paintings": mean([checkerboard_index(x) for x in held_paintings]),
        "checkerboard_real_photos": mean([checkerboard_index(x) for x in held_photos]),
    }


@torch.no_grad()
def realtime_loss_by_size(model: nn.Module, photos: Sequence[str | os.PathLike], sizes: Sequence[int],
                          style_images: dict[str, torch.Tensor], options: object) -> list[dict[str, float]]:
    """The transform network's perceptual loss (Johnson eqs. 2-3, style targets at ``options.style_size``) when it
    runs on photos resized to each of ``sizes`` (longest side), per style: at which size its strokes match the style.

    Gram matrices are normalised by C H W, so the style term compares texture statistics across sizes; it is lowest
    where the network's strokes have the scale of the style image's as VGG sees them.
    """
    loss = PerceptualLoss(options, list(style_images.values()))
    rows = []
    for size in sizes:
        for index, name in enumerate(style_images):
            weights = F.one_hot(torch.tensor([index]), len(style_images)).float()
            terms = []
            for photo in photos:
                content = load_image(photo, size)
                terms.append(loss(stylize(content, model, name), content, weights))
            rows.append({"size": size, "style": name,
                         "style_loss": sum(float(t["style"]) for t in terms) / len(terms),
                         "content_loss": sum(float(t["content"]) for t in terms) / len(terms)})
    return rows


def generators_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, nn.Module, dict]:
    """(G_A, G_B, info) from a CycleGAN training checkpoint (``nntools`` format, ``weights_only=True``).

    The architecture comes from the run's ``config.json`` beside the checkpoint; ``info`` holds epoch and iteration.
    """

    path = Path(path)
    config_path = path.parent / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path} not found: a CycleGAN checkpoint needs its run's config.json beside it")
    config = json.loads(config_path.read_text())
    fields = CycleGANOptions.__dataclass_fields__
    values = {key.split(".", 1)[1]: value for key, value in config.items()
              if key.startswith("cyclegan.") and key.split(".", 1)[1] in fields}
    options = CycleGANOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    state = torch.load(path, map_location="cpu", weights_only=True)
    generators = []
    for name in ("G_A", "G_B"):
        generator = build_generator(options)
        generator.load_state_dict(state["networks"][name])
        generators.append(generator.eval())
    return generators[0], generators[1], {"epoch": int(state["epoch"]), "iteration": int(state["iteration"])}


def held_out_set(photos_dir: str | os.PathLike, paintings_dir: str | os.PathLike, held_photo_names: Sequence[str],
                 held_painting_names: Sequence[str], size: int = 256, vgg: nn.Module | None = None
                 ) -> tuple[PaintingProbe, list[torch.Tensor], list[torch.Tensor], nn.Module]:
    """What :func:`evaluate_cyclegan` needs for the named held-out files at ``size`` px: the probe fit on every other
    image of the two folders (the training images), the held-out photos and paintings, and the VGG."""
    vgg = vgg or VGGFeatures(layers=list(PROBE_LAYERS), weights="normalised")
    train_photos, held_photos = split_held_out(photos_dir, names=[Path(p).name for p in held_photo_names])
    train_paintings, held_paintings = split_held_out(paintings_dir, names=[Path(p).name for p in held_painting_names])
    probe = fit_probe(vgg, load_images(train_photos, size), load_images(train_paintings, size))
    return probe, load_images(held_photos, size), load_images(held_paintings, size), vgg


def cyclegan_report(photo2painting: nn.Module, painting2photo: nn.Module, photos_dir: str | os.PathLike,
                    paintings_dir: str | os.PathLike, held_photo_names: Sequence[str],
                    held_painting_names: Sequence[str], size: int = 256) -> dict[str, float]:
    """:func:`evaluate_cyclegan` of two generators (e.g. the shipped ones, whose recipe names their held-out
    files) on the named held-out images at ``size`` px."""
    probe, photos, paintings, vgg = held_out_set(photos_dir, paintings_dir, held_photo_names, held_painting_names, size)
    return evaluate_cyclegan(photo2painting, painting2photo, photos, paintings, probe, vgg)


def run_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """A run's epoch copies in order, then its last checkpoint (those that exist)."""
    run_dir = Path(run_dir)
    candidates = sorted(run_dir.glob("checkpoint_epoch*.pth.tar")) + [run_dir / "checkpoint.pth.tar"]
    return [path for path in candidates if path.exists()]


def cyclegan_history(run_dir: str | os.PathLike, photos_dir: str | os.PathLike, paintings_dir: str | os.PathLike,
                     size: int = 256, vgg: nn.Module | None = None) -> list[dict[str, float]]:
    """:func:`evaluate_cyclegan` for every epoch copy of a run (and its last checkpoint), on the run's held-out split
    (``split.json``): the held-out numbers over training. One probe, fit once on the training images."""
    run_dir = Path(run_dir)
    split = json.loads((run_dir / "split.json").read_text())
    probe, photos, paintings, vgg = held_out_set(photos_dir, paintings_dir, split["held_out_photos"],
                                                 split["held_out_paintings"], size, vgg)
    rows, seen = [], set()
    for checkpoint in run_checkpoints(run_dir):
        photo2painting, painting2photo, info = generators_from_checkpoint(checkpoint)
        if info["iteration"] in seen:
            continue
        seen.add(info["iteration"])
        rows.append({**info, **evaluate_cyclegan(photo2painting, painting2photo, photos, paintings, probe, vgg)})
    return rows


GRAM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


# ------------------------------------------------------------------------------------------------- evaluation
def load_images(files: Iterable[str | os.PathLike], size: int) -> list[torch.Tensor]:
    """Images as (1, 3, H, W) in [0, 1], longest side ``size``."""
    return [load_image(f, size) for f in files]


@torch.no_grad()
def cycle_reconstruction_error(forward: nn.Module, backward: nn.Module, images: Sequence[torch.Tensor]) -> float:
    """Mean L1 in [0, 1] units between x and backward(forward(x)) (eq. 2 without the weight), over ``images``."""
    errors = [float(cycle_consistency_loss(translate(backward, translate(forward, x)), x)) for x in images]
    return sum(errors) / len(errors)


@torch.no_grad()
def mean_grams(vgg: nn.Module, images: Sequence[torch.Tensor], layers: Sequence[str] = GRAM_LAYERS
               ) -> dict[str, torch.Tensor]:
    """Mean normalised Gram matrix (Johnson eq. 3) per layer over a set of images: the set's style centroid."""
    sums: dict[str, torch.Tensor] = {}
    for image in images:
        features = vgg(image.to(next(vgg.buffers()).device))
        for layer in layers:
            gram = gram_matrix(features[layer], normalize=True)[0]
            sums[layer] = sums.get(layer, 0) + gram
    return {layer: total / len(images) for layer, total in sums.items()}


@torch.no_grad()
def gram_distance(vgg: nn.Module, images: Sequence[torch.Tensor], centroid: dict[str, torch.Tensor]) -> float:
    """Mean over images and layers of ||G_l(x) - Gbar_l||_F / ||Gbar_l||_F: relative style distance to a set."""
    distances = []
    for image in images:
        features = vgg(image.to(next(vgg.buffers()).device))
        per_layer = [float((gram_matrix(features[l], normalize=True)[0] - c).norm() / c.norm())
                     for l, c in centroid.items()]
        distances.append(sum(per_layer) / len(per_layer))
    return sum(distances) / len(distances)


def style_statistic(vgg: nn.Module, images: Sequence[torch.Tensor], photo_centroid: dict[str, torch.Tensor],
                    painting_centroid: dict[str, torch.Tensor]) -> dict[str, float]:
    """Gram distances of ``images`` to the photo set and to the painting set, and their ratio (< 1: painting-like)."""
    to_photos = gram_distance(vgg, images, photo_centroid)
    to_paintings = gram_distance(vgg, images, painting_centroid)
    return {"to_photos": to_photos, "to_paintings": to_paintings, "ratio_paintings_over_photos": to_paintings / to_photos}


def evaluate_translation(photo2painting: nn.Module, painting2photo: nn.Module, held_photos: Sequence[torch.Tensor],
                         held_paintings: Sequence[torch.Tensor], train_photos: Sequence[torch.Tensor],
                         train_paintings: Sequence[torch.Tensor], vgg: nn.Module | None = None,
                         untrained: tuple[nn.Module, nn.Module] | None = None) -> dict[str, Any]:
    """The evidence: cycle errors on held-out images; Gram distances to both sets before vs after translation.

    ``untrained`` (G_A, G_B at their initial weights) adds the same statistics before training.
    """
    if vgg is None:
        vgg = VGGFeatures(layers=list(GRAM_LAYERS), weights="normalised")
    photo_centroid, painting_centroid = mean_grams(vgg, train_photos), mean_grams(vgg, train_paintings)

    def statistic(images: Sequence[torch.Tensor]) -> dict[str, float]:
        return style_statistic(vgg, images, photo_centroid, painting_centroid)

    results: dict[str, Any] = {
        "cycle_l1_photo": cycle_reconstruction_error(photo2painting, painting2photo, held_photos),
        "cycle_l1_painting": cycle_reconstruction_error(painting2photo, photo2painting, held_paintings),
        "style": {
            "held-out photos (input)": statistic(held_photos),
            "G_A(photos): generated paintings": statistic([translate(photo2painting, x) for x in held_photos]),
            "held-out paintings (input)": statistic(held_paintings),
            "G_B(paintings): generated photos": statistic([translate(painting2photo, x) for x in held_paintings]),
        },
    }
    if untrained is not None:
        results["untrained_cycle_l1_photo"] = cycle_reconstruction_error(untrained[0], untrained[1], held_photos)
        results["untrained_cycle_l1_painting"] = cycle_reconstruction_error(untrained[1], untrained[0], held_paintings)
        results["style"]["untrained G_A(photos)"] = statistic([translate(untrained[0], x) for x in held_photos])
    return results


def evaluate_shipped(photos_dir: str | os.PathLike, paintings_dir: str | os.PathLike, size: int = 128,
                     max_reference: int | None = 64, assets_dir: Path = weights.ASSETS_DIR,
                     vgg: nn.Module | None = None, device: torch.device | str | None = None) -> dict[str, Any]:
    """:func:`evaluate_translation` for the shipped generators, on the held-out images named in their recipe.

    Style centroids come from (at most ``max_reference``, fixed-seed sample of) the training images of each domain;
    every image is loaded with its longest side ``size``. The untrained baseline is the recipe seed's initial G.
    Runs on ``device`` (None: the GPU if there is a usable one).
    """
    device = runtime.pick_device(device)
    photo2painting = load_generator("photo2painting", assets_dir=assets_dir, device=device)
    painting2photo = load_generator("painting2photo", assets_dir=assets_dir, device=device)
    if vgg is None:
        vgg = VGGFeatures(layers=list(GRAM_LAYERS), weights="normalised")
    vgg = vgg.to(device)
    recipe = weights.read_manifest(Path(assets_dir) / "MANIFEST.json")["cyclegan_photo2painting.pth"]["recipe"]
    held_photo_names = set(recipe["data"]["held_out_photos"])
    held_painting_names = set(recipe["data"]["held_out_paintings"])
    photos = domain_files(photos_dir, "Photo (domain A)")
    paintings = domain_files(paintings_dir, "Painting (domain B)")
    train_photos = [p for p in photos if p.name not in held_photo_names]
    train_paintings = [p for p in paintings if p.name not in held_painting_names]
    sampler = random.Random(0)
    if max_reference is not None:
        train_photos = sorted(sampler.sample(train_photos, min(max_reference, len(train_photos))))
        train_paintings = sorted(sampler.sample(train_paintings, min(max_reference, len(train_paintings))))
    # Every network's shape changes the RNG stream of the initialisation, so rebuild all four as in training.
    options = CycleGANOptions(size=int(recipe.get("size", 256)), ngf=photo2painting.ngf,
                              n_blocks=photo2painting.n_blocks, upsampling=photo2painting.upsampling,
                              ndf=int(recipe.get("ndf", 64)), n_layers_d=int(recipe.get("n_layers_d", 3)),
                              norm=recipe.get("norm", "instance"))
    initial = CycleGANModel(options, seed=int(recipe.get("seed", 0)))
    results = evaluate_translation(
        photo2painting, painting2photo,
        load_images([p for p in photos if p.name in held_photo_names], size),
        load_images([p for p in paintings if p.name in held_painting_names], size),
        load_images(train_photos, size), load_images(train_paintings, size), vgg,
        untrained=(initial.netG_A.to(device).eval(), initial.netG_B.to(device).eval()))
    results.update(held_out_photos=sorted(held_photo_names), held_out_paintings=sorted(held_painting_names),
                   reference_photos=len(train_photos), reference_paintings=len(train_paintings), size=size,
                   recipe_iterations=recipe.get("iterations"), recipe_epochs=recipe.get("epochs_completed"))
    return results


def evidence_table(results: dict[str, Any]) -> str:
    """Markdown table of :func:`evaluate_translation`'s style statistics and cycle errors."""
    lines = ["| images | Gram distance to photo set | to painting set | painting / photo |", "|---|---|---|---|"]
    for name, row in results["style"].items():
        lines.append(f"| {name} | {row['to_photos']:.3f} | {row['to_paintings']:.3f} | "
                     f"{row['ratio_paintings_over_photos']:.2f} |")
    lines.append("")
    lines.append("Cycle reconstruction error (mean L1 in [0, 1]) on held-out images: photo -> painting -> photo "
                 f"{results['cycle_l1_photo']:.4f}, painting -> photo -> painting {results['cycle_l1_painting']:.4f}")
    if "untrained_cycle_l1_photo" in results:
        lines.append(f"(untrained generators: {results['untrained_cycle_l1_photo']:.4f} and "
                     f"{results['untrained_cycle_l1_painting']:.4f})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ quality comparison
def optimise_image(loss_fn: Callable[[torch.Tensor], torch.Tensor], init: torch.Tensor, iterations: int = 100,
                   progress: bool = False) -> tuple[torch.Tensor, list[float]]:
    """Minimise ``loss_fn(x)`` over the pixels x with ``iterations`` L-BFGS iterations from ``init`` (the loop of
    :func:`gatys.optimise_pixels`, history 50, the loss as is). Returns (x clamped to [0, 1], the loss at each
    evaluation)."""
    
    trace: list[float] = []
    bar = tqdm(total=iterations, desc="L-BFGS", disable=not progress, leave=False)

    def record(image: torch.Tensor, losses: dict[str, float]) -> None:
        trace.append(losses["total"])
        bar.update()

    image = optimise_pixels(lambda x: {"total": loss_fn(x)}, init, iterations, history_size=50, start_at=None,
                            on_iteration=record)
    bar.close()
    return image.clamp(0, 1), trace


def compare_with_optimisation(
    model: TransformerNet, photos: Sequence[str | Path | torch.Tensor], options: RealtimeOptions,
    style_images: Mapping[str, str | Path | torch.Tensor], size: int | None = None, iterations: int = 100,
    progress: bool = True, optimised_losses: Mapping[tuple[str, str], float] | None = None,
) -> list[dict[str, Any]]:
    """Per (photo, style): the perceptual loss of the network's output and of ``iterations`` L-BFGS steps of the
    Gatys optimisation on the *same* loss (same layers and weights as training), started from the photo.

    ``optimised_losses``: {(photo file name, style): loss} of an earlier comparison on the same objective, size and
    iterations (it does not depend on the network); those pairs skip the L-BFGS run (their optimised_image is None).
    Returns rows {"photo", "style", "network_loss", "optimised_loss", "ratio", "network_image",
    "optimised_image"}; ratio = network / optimised (the quality bar asks for at most 2).
    """

    size = size or options.image_size
    device = next(model.parameters()).device
    styles = {k: (v if isinstance(v, torch.Tensor) else load_image(v, options.style_size)) for k, v in style_images.items()}
    loss = PerceptualLoss(options, list(styles.values())).to(device)
    names = list(getattr(model, "style_names", list(styles)))
    rows = []
    jobs = [(p, s) for p in photos for s in styles]
    for photo, style in tqdm(jobs, desc="compare", disable=not progress):
        image = photo if isinstance(photo, torch.Tensor) else load_image(photo, size)
        image = image[..., : image.shape[-2] // 4 * 4, : image.shape[-1] // 4 * 4].to(device)
        style_index = list(styles).index(style)
        weights = F.one_hot(torch.tensor([style_index]), len(styles)).float().to(device)
        with torch.no_grad():
            network_image = stylize(image, model, names.index(style) if style in names else style_index)
            content_features = loss.vgg(image, [options.content_layer])[options.content_layer]
            network_loss = float(loss(network_image, image, weights, content_features)["total"])
        name = Path(photo).name if not isinstance(photo, torch.Tensor) else "tensor"
        optimised, trace = None, []
        if (name, style) in (optimised_losses or {}):
            optimised_loss = float(optimised_losses[(name, style)])
        else:
            optimised, trace = optimise_image(lambda x: loss(x, image, weights, content_features)["total"], image,
                                              iterations)
            with torch.no_grad():
                optimised_loss = float(loss(optimised, image, weights, content_features)["total"])
        rows.append({"photo": name, "style": style, "network_loss": network_loss, "optimised_loss": optimised_loss,
                     "ratio": network_loss / optimised_loss, "network_image": network_image.cpu(),
                     "optimised_image": None if optimised is None else optimised.cpu(), "trace": trace,
                     "iterations": iterations})
    return rows
