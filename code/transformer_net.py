"""The image transformation network of Johnson, Alahi & Fei-Fei (ECCV 2016), with conditional instance norm.

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
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import versions  # noqa: F401  (start-up check: Python >= 3.10, torch >= 2.1, clear error otherwise)

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

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        normalised = F.instance_norm(x, eps=self.eps)
        gamma = (weights.to(self.gamma.dtype) @ self.gamma).to(x.dtype)[:, :, None, None]
        beta = (weights.to(self.beta.dtype) @ self.beta).to(x.dtype)[:, :, None, None]
        return normalised * gamma + beta


class ConvLayer(nn.Module):
    """Reflection pad + convolution (optionally preceded by nearest-neighbour upsampling x2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
        return F.relu(self.norm(self.conv(x), weights))


class ResidualBlock(nn.Module):
    """x + CIN(conv(ReLU(CIN(conv(x))))) with two 3x3 convs (He et al. 2016; Johnson et al. fig. 1 of the supp.)."""

    def __init__(self, channels: int, n_styles: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.norm1 = ConditionalInstanceNorm2d(channels, n_styles)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.norm2 = ConditionalInstanceNorm2d(channels, n_styles)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x), weights))
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
