"""Stablemax cross-entropy in the reference's exact form (2.3), and the init-time bias arithmetic of 1.11."""

import math

import pytest
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


def test_class_weights_follow_the_reference_rules():
    from collapse_doctor.train.losses import class_weights

    target = torch.tensor([[0, 0, 1, 1, 1, 1, 2, -100]])
    w = class_weights(target, 10, bg_cap=2.0, fg_cap=5.0)
    assert w[0] == 2.0  # background fixed at bg_weight_cap
    assert w[1] == 1.0 and w[2] == 5.0  # inverse frequency rescaled to [1, cap]: the rarest present class gets the cap
    assert (w[3:] == 5.0).all()  # absent classes get the cap
    equal = class_weights(torch.tensor([[1, 2, 3]]), 10, bg_cap=2.0, fg_cap=5.0)
    assert equal[1] == equal[2] == equal[3] == 3.0  # equal frequencies: (1 + cap) / 2


def test_each_loss_mode_from_its_definition():
    from collapse_doctor.config import TrainingConfig
    from collapse_doctor.train.losses import stablemax_cross_entropy, stablemax_log_probs, task_loss_per_cell

    torch.manual_seed(0)
    logits = torch.randn(2, 10, 3, 3)
    target = torch.randint(0, 10, (2, 3, 3))
    target[0, 0, 0] = -100
    plain = task_loss_per_cell(logits, target, TrainingConfig(loss_mode="stablemax"))
    torch.testing.assert_close(plain, stablemax_cross_entropy(logits, target))
    focal = task_loss_per_cell(
        logits, target, TrainingConfig(loss_mode="focal_stablemax", focal_gamma=0.0, focal_alpha=0.5)
    )
    torch.testing.assert_close(focal, 0.5 * plain)
    softmax = task_loss_per_cell(logits, target, TrainingConfig(loss_mode="focal", focal_gamma=0.0, focal_alpha=0.5))
    expected = 0.5 * torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="none")
    torch.testing.assert_close(softmax, expected)
    gamma = task_loss_per_cell(logits, target, TrainingConfig(loss_mode="focal_weighted", focal_gamma=2.0))
    weighted = task_loss_per_cell(logits, target, TrainingConfig(loss_mode="weighted_stablemax"))
    p_t = stablemax_log_probs(logits).exp().gather(1, target.clamp(min=0)[:, None])[:, 0].float()
    torch.testing.assert_close(gamma, weighted * (1 - p_t) ** 2)
    assert plain[0, 0, 0] == 0 and focal[0, 0, 0] == 0


def test_task_term_divides_by_the_whole_canvas():
    """Reference 2.3: each sample's summed loss over the canvas size, ignored cells counting as 0 (the /900)."""
    from types import SimpleNamespace

    from collapse_doctor.config import TrainingConfig
    from collapse_doctor.train.losses import rlan_loss, stablemax_cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(2, 10, 5, 5)
    target = torch.full((2, 5, 5), -100)
    target[:, :2, :2] = torch.randint(0, 10, (2, 2, 2))
    clues = SimpleNamespace(stop_logits=torch.full((2, 3), -5.0), entropy=torch.zeros(2, 3), attention=None)
    out = SimpleNamespace(logits=logits, all_logits=[logits], clues=clues, hpm_balance_loss=None)
    cfg = TrainingConfig(lambda_entropy=0.0, ponder_weight=0.0, entropy_ponder_weight=0.0, min_clues=1.0)
    loss = rlan_loss(out, target, cfg)
    expected = stablemax_cross_entropy(logits, target).sum(dim=(1, 2)).mean() / 25
    torch.testing.assert_close(loss.terms["task"], expected)
    assert float(loss.terms["min_clue"]) == 0.0  # ~3 clues used >= min_clues 1
    more = rlan_loss(
        out, target, TrainingConfig(lambda_entropy=0.0, ponder_weight=0.0, entropy_ponder_weight=0.0, min_clues=5.0)
    )
    used = 3 * (1 - torch.sigmoid(torch.tensor(-5.0)))
    assert float(more.terms["min_clue"]) == pytest.approx(0.5 * 5.0 * (5.0 - float(used)), rel=1e-5)


def _class_weights_as_written(target, num_classes, bg_cap, fg_cap):
    """The plain formula with boolean indexing and an `if` (what class_weights computed before it was
    made branch-free for vmap), kept here as the reference the branch-free version must equal."""
    valid = target[target != IGNORE_INDEX]
    counts = torch.bincount(valid.flatten(), minlength=num_classes)[:num_classes].double()
    fg = counts[1:]
    weights = torch.full((num_classes,), float(fg_cap), dtype=torch.float64)
    present = fg > 0
    if present.any():
        inverse = fg.sum() / fg[present]
        lo, hi = inverse.min(), inverse.max()
        if hi - lo > 0:
            scaled = 1.0 + (inverse - lo) / (hi - lo) * (fg_cap - 1.0)
        else:
            scaled = torch.full_like(inverse, (1.0 + fg_cap) / 2)
        weights[1:][present] = scaled
    weights[0] = bg_cap
    return weights.clamp(0.1, fg_cap)


def test_branch_free_class_weights_equal_the_plain_formula_bit_for_bit_and_vmap():
    from collapse_doctor.train.losses import class_weights

    generator = torch.Generator().manual_seed(0)
    cases = [
        torch.zeros(2, 5, 5, dtype=torch.long),  # background only: no FG class present
        torch.full((2, 5, 5), IGNORE_INDEX),  # nothing valid
        torch.tensor([[[0, 3], [3, IGNORE_INDEX]]]),  # one FG class: equal frequencies
        torch.tensor([[[10, 3], [5, 5]]]),  # PAD (10) is not a class
    ]
    for _ in range(40):
        target = torch.randint(0, 11, (3, 6, 6), generator=generator)
        target[torch.rand(3, 6, 6, generator=generator) < 0.3] = IGNORE_INDEX
        cases.append(target)
    for target in cases:
        for bg_cap, fg_cap in ((2.0, 5.0), (0.2, 5.0), (1.0, 1.0)):
            assert torch.equal(
                class_weights(target, 10, bg_cap, fg_cap), _class_weights_as_written(target, 10, bg_cap, fg_cap)
            )
    stacked = torch.stack(cases[4:8])
    batched = torch.func.vmap(lambda t: class_weights(t, 10, 2.0, 5.0))(stacked)
    assert torch.equal(batched, torch.stack([class_weights(t, 10, 2.0, 5.0) for t in cases[4:8]]))
