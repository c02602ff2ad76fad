"""B_simple from micro-batch gradients: checked on gradients with a known mean and covariance."""

from __future__ import annotations

import pytest
import torch

from collapse_doctor.experiments.gradient_noise import micro_batch_gradients, noise_scale


def test_noise_scale_recovers_a_known_b_simple():
    # per-sample gradients g ~ N(G, sigma^2 I) in d dims: tr(Sigma) = d sigma^2, B_simple = d sigma^2 / |G|^2
    torch.manual_seed(0)
    d, sigma, micro, n = 50, 2.0, 8, 4000
    mean = torch.full((d,), 0.5, dtype=torch.float64)
    per_sample = mean + sigma * torch.randn(n, micro, d, dtype=torch.float64)
    result = noise_scale(per_sample.mean(dim=1), micro)
    expected = d * sigma**2 / float(mean.pow(2).sum())  # 200 / 12.5 = 16
    assert result.b_simple == pytest.approx(expected, rel=0.1)
    assert result.g_sq == pytest.approx(12.5, rel=0.1)


def test_micro_batch_gradients_leave_the_weights_and_grads_alone():
    from conftest import arc_tasks, tiny_raw

    from collapse_doctor.config import parse_config
    from collapse_doctor.data.arc import usable_tasks
    from collapse_doctor.train.trainer import Trainer

    raw = tiny_raw()
    raw["training"].update(batch_size=2, grad_accumulation_steps=1)
    config = parse_config(raw, source="tiny.yaml").config
    trainer = Trainer(
        config, usable_tasks(arc_tasks(), config.data, config.model.max_grid_size), seed=0, steps_per_epoch=10
    )
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    grads = micro_batch_gradients(trainer, 0, 3)
    assert grads.shape[0] == 3 and torch.isfinite(grads).all() and not torch.equal(grads[0], grads[1])
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert all(p.grad is None for p in trainer.model.parameters())
