"""EMA of the model weights, kept for evaluation only: it never writes the training weights.

Follows docs/rlan-reference.md 2.6 (EMAHelper: shadow <- mu * shadow + (1 - mu) * param after each
optimizer step; evaluation runs on a deep copy carrying the shadow weights).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from collapse_doctor.config import TrainingConfig


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters()}

    @classmethod
    def from_config(cls, model: nn.Module, training: TrainingConfig) -> "EMA | None":
        """The EMA a config asks for, or None when training.use_ema is false."""
        return cls(model, training.ema_decay) if training.use_ema else None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            self.shadow[name].mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)

    def evaluation_copy(self, model: nn.Module) -> nn.Module:
        """A deep copy of `model` carrying the shadow weights; `model` itself is left untouched."""
        twin = copy.deepcopy(model)
        with torch.no_grad():
            for name, p in twin.named_parameters():
                p.copy_(self.shadow[name])
        return twin
