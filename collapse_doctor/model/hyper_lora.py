"""HyperLoRA: predicts per-task low-rank deltas for the solver's GRU gates, candidate and output head.

Follows docs/rlan-reference.md 1.10. Deltas act on activations, per pixel: y <- y + y @ dW, with the
same dW at every solver step (output-space modulation, as the reference's code, not its YAML comment).
"""

from __future__ import annotations

import torch
from torch import nn

from collapse_doctor.config import ModelConfig
from collapse_doctor.model.dropout import Dropout

LORA_TARGETS = ("gru_reset", "gru_update", "gru_candidate", "output_head")


class LoRAPredictor(nn.Module):
    """Context (B, D) -> A (B, D, r) and B (B, r, D), each from its own two-layer MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, r = cfg.hidden_dim, cfg.hyperlora_rank
        self.rank = r
        self.a_net = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d * r))
        self.b_net = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d * r))
        for net in (self.a_net, self.b_net):
            nn.init.normal_(net[2].weight, 0.0, cfg.hyperlora_init_scale)
            nn.init.zeros_(net[2].bias)

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, d = context.shape
        return self.a_net(context).view(b, d, self.rank), self.b_net(context).view(b, self.rank, d)


class HyperLoRA(nn.Module):
    """Support features (B, N, D, h, w) -> {target: dW (B, D, D)} for the four LORA_TARGETS."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, p = cfg.hidden_dim, cfg.hyperlora_dropout
        self.scaling = cfg.hyperlora_scaling
        self.context_fuse = nn.Sequential(
            nn.Linear(d, 2 * d), nn.GELU(), Dropout(p), nn.Linear(2 * d, d), nn.LayerNorm(d), Dropout(p)
        )
        self.predictors = nn.ModuleDict({target: LoRAPredictor(cfg) for target in LORA_TARGETS})

    def pool_context(self, support_features: torch.Tensor) -> torch.Tensor:
        """Per-pair global average pool, then mean over the N slots (zeroed invalid pairs included): (B, D)."""
        return self.context_fuse(support_features.mean(dim=(3, 4)).mean(dim=1))

    def forward(self, support_features: torch.Tensor, scale: float = 1.0) -> dict[str, torch.Tensor]:
        context = self.pool_context(support_features)  # (B, D)
        deltas = {}
        for target, predictor in self.predictors.items():
            a, b = predictor(context)
            deltas[target] = (self.scaling * scale) * torch.bmm(a, b)  # (B, D, D)
        return deltas


def apply_lora(y: torch.Tensor, delta: torch.Tensor | None) -> torch.Tensor:
    """y (B, D, H, W) -> y + y @ dW per pixel; identity when delta is None."""
    if delta is None:
        return y
    return y + torch.einsum("bdhw,bde->behw", y, delta)
