"""VGG19 / VGG16 feature extractor with named layers, truncated at the deepest layer a caller needs."""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from vgg_weights import (
    BLOCK_CHANNELS,
    BLOCK_SIZES,
    CAFFE_MEAN_BGR,
    PREPROCESSING,
    TORCHVISION_MEAN_RGB,
    TORCHVISION_STD_RGB,
    load_vgg_weights,
)


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
                self.body.add_module(name, nn.Conv2d(in_channels, out_channels, 3, padding=1))
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
            needed = {k: v for k, v in state.items() if k.split(".")[0] in self.body._modules}
            self.body.load_state_dict(needed)
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
        x = self.preprocess(image)
        for name, module in self.body.named_children():
            x = module(x)
            if name in wanted:
                features[name] = x
                if len(features) == len(wanted):
                    break
        return features
