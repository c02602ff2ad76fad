"""The gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018, "An Empirical Model of
Large-Batch Training", appendix A), from micro-batch gradients like those gradient accumulation computes.

With n micro-batches of size b (B_small = b, B_big = n*b), unbiased estimates are
    |G|^2 ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    S     ~ (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big)
where |G_small|^2 is the mean squared norm of the micro-batch gradients and |G_big|^2 the squared norm of
their mean. B_simple = S / |G|^2 is the batch size around which a larger batch stops buying a
proportionally larger step: training at a batch far below it is dominated by gradient noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from collapse_doctor.train.losses import rlan_loss
from collapse_doctor.train.trainer import Trainer


@dataclass(frozen=True)
class NoiseScale:
    step: int  # optimizer steps trained before the measurement
    micro_batch: int
    micro_batches: int
    g_small_sq: float  # mean |G_small|^2
    g_big_sq: float  # |G_big|^2
    g_sq: float  # the unbiased |G|^2
    trace_sigma: float  # the unbiased tr(Sigma) (S)
    b_simple: float | None  # None when |G|^2 <= 0: the mean gradient is lost in the noise at this sample size

    def to_json(self) -> dict:
        return asdict(self)


def micro_batch_gradients(trainer: Trainer, first_batch: int, n: int) -> torch.Tensor:
    """(n, parameters) gradients of the training loss, one row per micro-batch, weights unchanged."""
    t = trainer.config.training
    stage = trainer.stage()
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    rows = []
    for i in range(n):
        batch = trainer.stream.batch(first_batch + i, t.batch_size).to(trainer.device)
        trainer.model.zero_grad(set_to_none=True)
        out = trainer.model(batch.query_input, batch.support_inputs, batch.support_outputs, batch.pair_mask, stage)
        loss = rlan_loss(
            out,
            batch.query_target,
            t,
            progress=stage.epoch / t.max_epochs,
            hpm_balance_weight=trainer.config.model.hpm_balance_weight,
        )
        loss.total.backward()
        rows.append(
            torch.cat(
                [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten().double() for p in params]
            )
        )
    trainer.model.zero_grad(set_to_none=True)
    return torch.stack(rows)


def noise_scale(grads: torch.Tensor, micro_batch: int, step: int = 0) -> NoiseScale:
    n = grads.shape[0]
    if n < 2:
        raise ValueError("need at least two micro-batches")
    small, big = micro_batch, micro_batch * n
    g_small_sq = float(grads.pow(2).sum(dim=1).mean())
    g_big_sq = float(grads.mean(dim=0).pow(2).sum())
    g_sq = (big * g_big_sq - small * g_small_sq) / (big - small)
    trace = (g_small_sq - g_big_sq) / (1 / small - 1 / big)
    return NoiseScale(step, micro_batch, n, g_small_sq, g_big_sq, g_sq, trace, trace / g_sq if g_sq > 0 else None)
