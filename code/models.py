"""The networks of this repository, in one place (each is defined in its own small module).

* ``VGGFeatures``: pretrained VGG19/VGG16 feature extractor with named layers (Gatys et al.; perceptual losses).
* ``TransformerNet``: Johnson et al.'s transform network with conditional instance norm (real-time transfer).
* ``ResnetGenerator``, ``PatchDiscriminator``: CycleGAN's networks (Zhu et al. 2017).
"""
from vgg import VGGFeatures, check_layers, layer_names  # noqa: F401
from cyclegan_nets import ResnetGenerator, PatchDiscriminator  # noqa: F401
from transformer_net import TransformerNet  # noqa: F401
