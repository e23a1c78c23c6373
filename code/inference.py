"""The inference path of the feed-forward networks: exact, cheaper forms of their layers (used without autograd;
training keeps the plain forms, so that a resumed run repeats an uninterrupted one bit for bit) and the memory layout
they run in. Measured in bench/bench_inference_peer.py against pytorch/examples' TransformerNet."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Rows of the 2 x 2 kernels of the two output phases of nearest x2 upsampling then a 3 x 3 convolution: even output
# rows see input rows (i-1, i) with kernel rows (k0, k1 + k2), odd ones (i, i+1) with (k0 + k1, k2); the same per column.
_PHASE_ROWS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def upsampled_conv3x3(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(reflect_pad_1(upsample_nearest_x2(x)))`` for a 3 x 3, stride-1 ``conv``, computed at the input's
    resolution, exactly: reflection padding of the upsampled image equals replication padding of ``x``, and each of
    the four output phases is a 2 x 2 convolution of ``x`` (the sub-pixel view of Shi et al. 2016). It takes 4/9 of
    the multiply-adds and no upsampled copy; the inference path of the networks (bench/bench_inference_peer.py)."""
    n, _, height, width = x.shape
    weight, out_channels = conv.weight, conv.out_channels
    rows = _PHASE_ROWS.to(weight.device, weight.dtype)
    kernels = torch.einsum("pak,qbl,oikl->pqoiab", rows, rows, weight).reshape(4 * out_channels, -1, 2, 2)
    bias = conv.bias.repeat(4).to(x.dtype) if conv.bias is not None else None
    phases = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels.to(x.dtype), bias)
    phases = phases.view(n, 2, 2, out_channels, height + 1, width + 1)
    layout = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
              else torch.contiguous_format)
    out = torch.empty(n, out_channels, 2 * height, 2 * width, dtype=phases.dtype, device=x.device, memory_format=layout)
    for p in (0, 1):
        for q in (0, 1):
            out[:, :, p::2, q::2] = phases[:, p, q, :, p:p + height, q:q + width]
    return out


def fast_upsampling(conv: nn.Conv2d) -> bool:
    """At inference (no autograd) and for a 3 x 3 stride-1 conv; training keeps the plain form, so that resumed
    runs repeat uninterrupted ones bit for bit."""
    return not torch.is_grad_enabled() and conv.kernel_size == (3, 3) and conv.stride == (1, 1)


def instance_norm_of_one(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> torch.Tensor:
    """gamma * (x - mu) / sqrt(var + eps) + beta per channel of one image (1, C, H, W): batch norm in training mode
    over (1, C, H, W) computes exactly these statistics, with the affine step fused and in ``x``'s memory layout;
    ``F.instance_norm`` first copies to (1, N C, H, W), which took about 20 % of the transform network's CPU time in
    channels_last."""
    return F.batch_norm(x, None, None, gamma.to(x.dtype), beta.to(x.dtype), training=True, eps=eps)


def inference_layout(module: torch.nn.Module, device: torch.device | str, precision: str) -> torch.nn.Module:
    """A feed-forward network loaded for inference, switched to channels_last where that is faster (measured): on a
    CPU (oneDNN's convolutions; bench/bench_inference_peer.py) and on CUDA under 16-bit autocast (tensor cores).
    The parameters keep their values; only networks loaded for inference are converted, never one being trained
    (a resumed run must repeat the uninterrupted one bit for bit)."""
    device = torch.device(device)
    if device.type == "cpu" or (device.type == "cuda" and precision in ("bf16", "fp16")):
        module.to(memory_format=torch.channels_last)
    return module


def same_layout(image: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
    """``image`` in the memory layout of the module's first 4-d weight (see :func:`inference_layout`)."""
    weight = next((p for p in module.parameters() if p.dim() == 4), None)
    if weight is not None and weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return image.contiguous(memory_format=torch.channels_last)
    return image
