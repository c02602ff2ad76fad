"""Stablemax cross-entropy in the reference's exact form (2.3), and the init-time bias arithmetic of 1.11."""

import math

import torch

from collapse_doctor.train.losses import IGNORE_INDEX, stablemax_cross_entropy, stablemax_log_probs, stablemax_s


def test_s_is_continuous_and_positive():
    x = torch.tensor([-3.0, -1e-9, 0.0, 2.0], dtype=torch.float64)
    assert torch.allclose(stablemax_s(x), torch.tensor([0.25, 1.0, 1.0, 3.0], dtype=torch.float64))


def test_uniform_logits_give_log_ten_and_ignored_cells_give_zero():
    logits = torch.zeros(1, 10, 2, 2)
    target = torch.tensor([[[0, 3], [IGNORE_INDEX, 9]]])
    loss = stablemax_cross_entropy(logits, target)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss[0, 0, 0], torch.tensor(math.log(10)), atol=1e-6)
    assert loss[0, 1, 0] == 0


def test_non_finite_logits_are_neutralised_and_gradients_stay_finite():
    logits = torch.zeros(1, 10, 1, 2, requires_grad=True)
    poisoned = logits + torch.tensor([float("nan")] + [0.0] * 9).view(1, 10, 1, 1)
    loss = stablemax_cross_entropy(poisoned, torch.tensor([[[1, 2]]]))
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_bg_bias_minus_half_at_init_matches_the_reference_arithmetic():
    """Reference 1.11: logits N(0, 1/3) per class; bias -0.5 on class 0 gives BG argmax about 2 % and mean P(BG) about 7.2 %."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(400_000, 10, generator=g) * math.sqrt(1 / 3)
    logits[:, 0] -= 0.5
    argmax_share = (logits.argmax(1) == 0).double().mean().item()
    p_bg = stablemax_log_probs(logits, dim=1)[:, 0].exp().mean().item()
    assert abs(argmax_share - 0.020) < 0.003
    assert abs(p_bg - 0.072) < 0.003
    logits[:, 0] += 0.5
    assert abs((logits.argmax(1) == 0).double().mean().item() - 0.10) < 0.003
