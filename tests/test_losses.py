"""Gatys losses against hand computations (Gatys et al. 2016, eqs. 1, 3, 4, 5) and their basic invariants."""
from __future__ import annotations

import pytest
import torch
from losses import (
    content_loss,
    gram_matrix,
    style_layer_loss,
    style_loss,
    total_variation_loss,
)


def hand_features() -> torch.Tensor:
    # N_l = 2 filters, M_l = 4 positions: F_0 = (1, 2, 3, 4), F_1 = (0, 1, 0, 1)
    return torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])


def test_gram_matrix_matches_hand_computation():
    gram = gram_matrix(hand_features())
    # G_00 = 1+4+9+16 = 30, G_01 = 0+2+0+4 = 6, G_11 = 0+1+0+1 = 2
    torch.testing.assert_close(gram, torch.tensor([[[30.0, 6.0], [6.0, 2.0]]]))
    torch.testing.assert_close(gram_matrix(hand_features(), normalize=True), gram / (2 * 2 * 2))


def test_gram_matrix_gradient_hand_value_and_gradcheck():
    # d/dF sum_ij W_ij G_ij = (W + W^T) F; with W = [[1, 0], [0, 0]]: 2 F_0 in row 0, zeros in row 1
    features = hand_features().requires_grad_(True)
    (gram_matrix(features) * torch.tensor([[1.0, 0.0], [0.0, 0.0]])).sum().backward()
    torch.testing.assert_close(features.grad, torch.tensor([[[[2.0, 4.0], [6.0, 8.0]], [[0.0, 0.0], [0.0, 0.0]]]]))
    torch.autograd.gradcheck(gram_matrix, torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gram_matrix_gradient_keeps_the_layout_and_dtype_of_the_features(dtype):
    torch.manual_seed(0)
    features = torch.randn(1, 6, 5, 7).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    weights = torch.randn(1, 6, 6)
    (gram_matrix(features) * weights).sum().backward()
    assert features.grad.dtype == dtype
    assert features.grad.is_contiguous(memory_format=torch.channels_last)
    expected = (weights + weights.transpose(1, 2)) @ features.detach().float().reshape(1, 6, 35)
    torch.testing.assert_close(features.grad.float().reshape(1, 6, 35), expected,
                               **({} if dtype == torch.float32 else {"atol": 0.05, "rtol": 0.02}))


def test_gram_matrix_is_symmetric_and_ignores_positions_order():
    features = torch.randn(2, 5, 3, 4)
    gram = gram_matrix(features)
    torch.testing.assert_close(gram, gram.transpose(1, 2))
    shuffled = features.flatten(2)[:, :, torch.randperm(12)].reshape(2, 5, 3, 4)
    torch.testing.assert_close(gram_matrix(shuffled), gram, rtol=1e-5, atol=1e-5)


def test_content_loss_is_half_sum_of_squares():
    target = torch.zeros_like(hand_features())
    # 1/2 (1 + 4 + 9 + 16 + 0 + 1 + 0 + 1) = 16
    assert content_loss(hand_features(), target).item() == pytest.approx(16.0)


def test_style_layer_loss_normalisation():
    features = hand_features()
    target = torch.zeros(1, 2, 2)
    # sum (G - 0)^2 = 900 + 36 + 36 + 4 = 976; 4 N^2 M^2 = 4 * 4 * 16 = 256
    assert style_layer_loss(features, target).item() == pytest.approx(976 / 256)


def test_style_loss_weights_layers():
    # layer "a": the hand features, E = 976 / 256 (above); layer "b": one filter, four positions F = (1, 1, 1, 1),
    # G = 4, target 2: E = (4 - 2)^2 / (4 * 1 * 16) = 1/16. Layer "c" has no weight and must not count.
    features = {"a": hand_features(), "b": torch.ones(1, 1, 2, 2), "c": torch.ones(1, 1, 2, 2)}
    targets = {"a": torch.zeros(1, 2, 2), "b": torch.full((1, 1, 1), 2.0), "c": torch.zeros(1, 1, 1)}
    total = style_loss(features, targets, {"a": 0.25, "b": 2.0})
    assert total.item() == pytest.approx(0.25 * 976 / 256 + 2.0 / 16)


def test_losses_zero_for_identical_inputs_positive_otherwise():
    features = torch.rand(1, 8, 6, 6)
    other = features + 0.1 * torch.randn_like(features)
    assert content_loss(features, features).item() == 0.0
    assert style_layer_loss(features, gram_matrix(features)).item() == 0.0
    assert content_loss(other, features).item() > 0
    assert style_layer_loss(other, gram_matrix(features)).item() > 0


def test_total_variation_hand_value_and_constant_image():
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # horizontal: (1-0)^2 + (4-2)^2 = 5; vertical: (2-0)^2 + (4-1)^2 = 13
    assert total_variation_loss(image).item() == pytest.approx(18.0)
    assert total_variation_loss(torch.full((1, 3, 5, 5), 0.7)).item() == 0.0
