"""Losses of the three methods, each citing the equation it implements.

* Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural Networks", CVPR 2016 (and the
  course handout, which follows it): content loss (eq. 1), Gram matrix (eq. 3), per-layer style loss (eq. 4),
  style loss (eq. 5), total loss alpha * L_content + beta * L_style (eq. 7).
* Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016:
  feature reconstruction loss (eq. 2), normalised Gram matrix and style reconstruction loss (eqs. 3-4),
  total-variation regulariser (section 3.3).
* Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks",
  ICCV 2017: least-squares adversarial loss (section 4 / Mao et al. 2017), cycle-consistency loss (eq. 2),
  identity loss (section 5.2).
* Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization", ICCV 2017:
  channel mean and standard deviation (eqs. 5-6), content loss to the AdaIN target (eq. 12), style loss on the
  feature statistics (eq. 13).

Feature maps are tensors of shape (N, C, H, W): N_l = C filters, M_l = H * W positions."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import torch
import torch.nn.functional as F
from models import VGGFeatures

if TYPE_CHECKING:  # annotations only: realtime imports this module
    from realtime import RealtimeOptions


# ----------------------------------------------------------------------------------------------- Gatys et al.
def _at_least_fp32(tensor: torch.Tensor) -> torch.dtype:
    """float32 for 16-bit features (the sums over H * W), float64 kept (for gradient checks)."""
    return torch.promote_types(tensor.dtype, torch.float32)


class _Gram(torch.autograd.Function):
    """G = F F^T per sample, with one matrix product in the backward pass: dL/dF = (dG + dG^T) F.

    Autograd's own backward of ``bmm(F, F^T)`` takes two products and adds them (a full-size copy), and in
    channels_last it returns a gradient in the other memory format, which makes the sums at the VGG's branch points
    slow. Here the gradient comes back in the layout and dtype of the features (measured in bench/bench_gatys_peer.py).
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(features)
        n, c, h, w = features.shape
        flat = features.to(_at_least_fp32(features)).reshape(n, c, h * w)
        with torch.autocast(features.device.type, enabled=False):  # autocast would run bmm in 16 bits again
            return torch.bmm(flat, flat.transpose(1, 2))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_gram: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (features,) = ctx.saved_tensors
        n, c, h, w = features.shape
        symmetric = grad_gram + grad_gram.transpose(1, 2)
        flat = features.to(grad_gram.dtype).reshape(n, c, h * w)
        with torch.autocast(features.device.type, enabled=False):
            if features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous():
                # (N, HW, C) row-major is the channels_last layout of (N, C, H, W)
                grad = torch.bmm(flat.transpose(1, 2), symmetric).view(n, h, w, c).permute(0, 3, 1, 2)
            else:
                grad = torch.bmm(symmetric, flat).view(n, c, h, w)
        return grad.to(features.dtype)


def gram_matrix(features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Gram matrix G^l_ij = sum_k F^l_ik F^l_jk (Gatys eq. 3), shape (N, C, C).

    With ``normalize=True`` it is divided by C * H * W, the normalised Gram matrix of Johnson et al. (eq. 3).
    Computed in float32 even under autocast, since the sums over H * W overflow or lose precision in 16 bits.
    """
    if features.dim() != 4:
        raise ValueError(f"gram_matrix expects features of shape (N, C, H, W), got {tuple(features.shape)}")
    n, c, h, w = features.shape
    gram = _Gram.apply(features)
    return gram / (c * h * w) if normalize else gram


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_content = 1/2 sum_ij (F^l_ij - P^l_ij)^2 (Gatys eq. 1), summed over the batch."""
    return 0.5 * (features.float() - target.float()).pow(2).sum()


def style_layer_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """E_l = 1 / (4 N_l^2 M_l^2) sum_ij (G^l_ij - A^l_ij)^2 (Gatys eq. 4), summed over the batch."""
    _, channels, height, width = features.shape
    positions = height * width
    difference = gram_matrix(features) - target_gram
    return difference.pow(2).sum() / (4.0 * channels**2 * positions**2)


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
) -> torch.Tensor:
    """L_style = sum_l w_l E_l (Gatys eq. 5) over the layers named in ``layer_weights``."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    for name, weight in layer_weights.items():
        total = total + weight * style_layer_loss(features[name], target_grams[name])
    return total


def total_variation_loss(image: torch.Tensor) -> torch.Tensor:
    """Squared total variation sum (x_{i,j+1} - x_ij)^2 + (x_{i+1,j} - x_ij)^2, summed over pixels and channels.

    The smoothness prior of Mahendran & Vedaldi (2015) used by Johnson et al. (sec. 3.3) and jcjohnson/neural-style.
    """
    horizontal = image[..., :, 1:] - image[..., :, :-1]
    vertical = image[..., 1:, :] - image[..., :-1, :]
    return horizontal.float().pow(2).sum() + vertical.float().pow(2).sum()


# --------------------------------------------------------------------------------------------- Johnson et al.
def feature_reconstruction_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """l_feat = 1/(C H W) ||phi(y_hat) - phi(y)||_2^2 (Johnson eq. 2), averaged over the batch."""
    return F.mse_loss(features.float(), target.float())


def style_reconstruction_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """l_style = ||G(y_hat) - G(y)||_F^2 with normalised Gram matrices (Johnson eqs. 3-4), averaged over the batch.

    ``target_gram`` is (1, C, C) or (N, C, C) (one target per sample, e.g. several styles in a batch).
    """
    gram = gram_matrix(features, normalize=True)
    return (gram - target_gram).pow(2).sum(dim=(1, 2)).mean()


# ------------------------------------------------------------------------------------------------ Zhu et al.
def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean (D(x) - 1)^2 for real targets, mean D(x)^2 for fake ones (Mao et al. 2017)."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.mse_loss(prediction.float(), target.float())


def cycle_consistency_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """L_cyc = E ||F(G(x)) - x||_1 (Zhu eq. 2), the mean absolute error; weighted by lambda = 10 in the paper."""
    return F.l1_loss(reconstructed.float(), original.float())


def identity_loss(mapped: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """L_identity = E ||G(y) - y||_1 (Zhu sec. 5.2); weighted by 0.5 * lambda in the paper."""
    return F.l1_loss(mapped.float(), original.float())


# ----------------------------------------------------------------------------------------- Huang & Belongie
def channel_mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel mu = mean over H, W (Huang eq. 5) and sigma = sqrt(mean (x - mu)^2 + eps) (eq. 6),
    each (N, C, 1, 1); computed in float32."""
    if features.dim() != 4:
        raise ValueError(f"channel_mean_std expects features of shape (N, C, H, W), got {tuple(features.shape)}")
    flat = features.float().flatten(2)
    mean = flat.mean(2)
    variance = flat.var(2, unbiased=False)
    return mean[..., None, None], (variance + eps).sqrt()[..., None, None]


def adain_content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_c = ||f(g(t)) - t||^2 (Huang eq. 12) with the AdaIN output t at relu4_1, as the mean squared error (the
    reference implementations' form, for which lambda = 10 was chosen)."""
    return F.mse_loss(features.float(), target.float())


def adain_style_loss(features: Mapping[str, torch.Tensor], style_features: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """L_s = sum_i ||mu(phi_i(g(t))) - mu(phi_i(s))||^2 + ||sigma(phi_i(g(t))) - sigma(phi_i(s))||^2 (Huang eq. 13)
    over the layers of ``style_features`` (paper: relu1_1, relu2_1, relu3_1, relu4_1), mean squared errors as in the
    reference implementations. ``style_features`` may have batch size 1 (one style for the whole batch)."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    for name, target in style_features.items():
        mean, std = channel_mean_std(features[name])
        target_mean, target_std = channel_mean_std(target)
        total = total + F.mse_loss(mean, target_mean.expand_as(mean)) + F.mse_loss(std, target_std.expand_as(std))
    return total


# ------------------------------------------------------------------------------------------------- losses
class PerceptualLoss(torch.nn.Module):
    """Johnson's perceptual loss with precomputed style Grams for each style (index = style number)."""

    def __init__(self, options: RealtimeOptions, style_images: Sequence[torch.Tensor], vgg: VGGFeatures | None = None) -> None:
        super().__init__()
        self.options = options
        self.layer_weights = options.layer_weights()
        layers = list(dict.fromkeys([options.content_layer, *options.style_layers]))
        self.vgg = vgg if vgg is not None else VGGFeatures(layers, arch=options.loss_network,
                                                                weights=options.vgg_weights)
        with torch.no_grad():
            grams = [self.style_grams(image) for image in style_images]
        for layer in options.style_layers:  # (n_styles, C, C) buffers, so .to(device) moves them
            self.register_buffer(f"gram_{layer}", torch.cat([g[layer] for g in grams]))

    def style_grams(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised Gram matrices G^phi_j(y_s) of one style image (Johnson eq. 3), each (1, C, C)."""
        features = self.vgg(image, self.options.style_layers)
        return {layer: gram_matrix(features[layer], normalize=True) for layer in self.options.style_layers}

    def target_grams(self, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample targets (N, C, C) for style mixing weights (N, n_styles)."""
        return {l: torch.einsum("ns,scd->ncd", weights.float(), getattr(self, f"gram_{l}")) for l in self.options.style_layers}

    def forward(self, output: torch.Tensor, content: torch.Tensor, weights: torch.Tensor,
                content_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """{"content", "style", "tv", "total"} for outputs y_hat, content images y_c and style weights (N, S)."""
        o = self.options
        features = self.vgg(output)
        if content_features is None:
            with torch.no_grad():
                content_features = self.vgg(content, [o.content_layer])[o.content_layer]
        content_term = feature_reconstruction_loss(features[o.content_layer], content_features)
        targets = self.target_grams(weights)
        style_term = sum(w * style_reconstruction_loss(features[l], targets[l]) for l, w in self.layer_weights.items())
        tv_term = total_variation_loss(output) / output.numel()
        total = o.content_weight * content_term + o.style_weight * style_term + o.tv_weight * tv_term
        return {"content": content_term, "style": style_term, "tv": tv_term, "total": total}
