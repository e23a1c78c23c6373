"""Colour control for style transfer (Gatys, Bethge, Hertzmann & Shechtman, "Preserving Color in Neural Artistic
Style Transfer", 2016): luminance-only transfer in YIQ space, and linear colour matching of the style image."""
from __future__ import annotations

import torch

# NTSC YIQ (the matrix used by Gatys et al. 2016 for luminance-only transfer).
RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> YIQ (channel 0 is the luminance Y)."""
    return torch.einsum("ij,njhw->nihw", RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) YIQ -> RGB."""
    return torch.einsum("ij,njhw->nihw", YIQ_TO_RGB.to(image), image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Y channel (N, 1, H, W) of an RGB image."""
    return rgb_to_yiq(image)[:, :1]


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style luminance to the content's mean and standard deviation (Gatys et al. 2016, eq. 1)."""
    return (style_y - style_y.mean()) * (content_y.std() / style_y.std().clamp_min(1e-8)) + content_y.mean()


def combine_luminance(styled: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Take the luminance of ``styled`` and the I/Q colour channels of ``content`` (same size); RGB out, clamped."""
    yiq = rgb_to_yiq(content)
    yiq = torch.cat([luminance(styled), yiq[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def match_color(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Recolour ``source`` so its RGB mean and covariance equal ``target``'s (linear colour transfer).

    x' = C_t^{1/2} C_s^{-1/2} (x - mu_s) + mu_t with symmetric matrix square roots (the "image analogies" variant
    of Gatys et al. 2016, sec. 2.1), which keeps the result closest to the original colours among such maps.
    """
    def stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image.reshape(3, -1).double()
        mean = pixels.mean(dim=1, keepdim=True)
        centred = pixels - mean
        return mean, centred @ centred.T / pixels.shape[1] + eps * torch.eye(3, dtype=torch.float64, device=image.device)

    def sqrtm(matrix: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(matrix)
        values = values.clamp_min(eps) ** (-0.5 if inverse else 0.5)
        return vectors @ torch.diag(values) @ vectors.T

    if source.shape[0] != 1 or target.shape[0] != 1:
        raise ValueError("match_color works on single images (batch size 1)")
    mean_s, cov_s = stats(source[0])
    mean_t, cov_t = stats(target[0])
    transform = sqrtm(cov_t) @ sqrtm(cov_s, inverse=True)
    pixels = source[0].reshape(3, -1).double()
    result = transform @ (pixels - mean_s) + mean_t
    return result.reshape_as(source[0]).unsqueeze(0).to(source.dtype).clamp(0, 1)
