"""CycleGAN's networks (Zhu, Park, Isola & Efros, ICCV 2017, appendix 7.2), as in junyanz/pytorch-CycleGAN-and-pix2pix.

* :class:`ResnetGenerator`: ``c7s1-ngf, d(2 ngf), d(4 ngf), R(4 ngf) x n_blocks, u(2 ngf), u(ngf), c7s1-3`` + tanh,
  the architecture of Johnson et al. (2016) with instance normalisation and reflection padding; the paper uses
  6 blocks at 128x128 and 9 blocks at 256x256 and higher.
* :class:`PatchDiscriminator`: the 70x70 PatchGAN ``C64-C128-C256-C512`` (no norm on C64, LeakyReLU 0.2) followed by
  a 1-channel convolution, which classifies every overlapping 70x70 patch as real or fake.
* :func:`init_weights`: weights from N(0, 0.02) (appendix 7.1).

The networks work on images in [-1, 1] (like the reference implementation); :func:`translate` is the user-facing
helper that takes and returns RGB images in [0, 1] of any size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nntools import precision_autocast, resolve_precision

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
                             "use cyclegan_nets.translate() for images of any size")
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


def to_signed(image01: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the networks' input range."""
    return image01 * 2.0 - 1.0


def to_unit(image_signed: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (image_signed + 1.0) * 0.5


def pad_to_multiple(image: torch.Tensor, multiple: int = 4, minimum: int = 8
                    ) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad bottom/right edges to a multiple (and at least ``minimum``, so the bottleneck's reflection padding fits).

    Reflection padding where possible, replication for tiny images; returns (padded, original (H, W)).
    """
    height, width = image.shape[-2:]
    target_h = max(minimum, height + (-height) % multiple)
    target_w = max(minimum, width + (-width) % multiple)
    pad_h, pad_w = target_h - height, target_w - width
    if pad_h == 0 and pad_w == 0:
        return image, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode), (height, width)


@torch.no_grad()
def translate(generator: ResnetGenerator, image01: torch.Tensor, precision: str | None = None) -> torch.Tensor:
    """Apply a generator to RGB image(s) in [0, 1] of any size; returns the same shape in [0, 1].

    Accepts (3, H, W) or (N, 3, H, W); runs on the generator's device and dtype; pads to a multiple of 4 and crops back.
    ``precision``: autocast of the forward pass (None: the generator's ``precision`` attribute, set by
    ``cyclegan.load_generator``, else "auto": bf16 where native, see :func:`nntools.resolve_precision`).
    """
    single = image01.dim() == 3
    batch = image01.unsqueeze(0) if single else image01
    if batch.dim() != 4 or batch.shape[1] != 3:
        raise ValueError(f"translate expects RGB images of shape (N, 3, H, W), got {tuple(image01.shape)}")
    parameter = next(generator.parameters())
    was_training = generator.training
    generator.eval()
    try:
        padded, (height, width) = pad_to_multiple(batch.to(parameter.device, parameter.dtype), 4)
        ran = resolve_precision(precision or getattr(generator, "precision", "auto"), parameter.device)
        with precision_autocast(ran, parameter.device):
            signed = generator(to_signed(padded))
        output = to_unit(signed.to(parameter.dtype))[..., :height, :width].clamp(0, 1)
    finally:
        generator.train(was_training)
    output = output.to(image01.device, image01.dtype)
    return output[0] if single else output
