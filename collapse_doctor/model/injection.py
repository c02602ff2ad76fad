"""Context injection into the query features: FiLM on a pooled vector, or cross-attention to support features.

Follows docs/rlan-reference.md 1.4 (ContextInjector, FiLM) and 1.5 (CrossAttentionInjector). Both share
one call signature, so RLAN picks one in __init__. Deliberate difference: while the cross-attention
injector is staged off, no context is injected (the module is absent); the reference's 0ea057c
substituted a separately trained FiLM injector instead (docs/model.md).
"""

from __future__ import annotations

import torch
from torch import nn

from collapse_doctor.config import ModelConfig
from collapse_doctor.model.attention import attend
from collapse_doctor.model.context_encoder import Context
from collapse_doctor.model.dropout import Dropout


class FiLMInjector(nn.Module):
    """features <- scale * features + shift, scale = 2 sigmoid(W_s c) in (0, 2), shift = W_b c."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.to_scale = nn.Linear(d, d)
        self.to_shift = nn.Linear(d, d)

    def forward(self, features: torch.Tensor, context: Context) -> torch.Tensor:
        c = context.pooled()  # (B, D)
        scale = 2.0 * torch.sigmoid(self.to_scale(c))[:, :, None, None]  # (B, D, 1, 1)
        shift = self.to_shift(c)[:, :, None, None]  # (B, D, 1, 1)
        return scale * features + shift  # (B, D, H, W)


class CrossAttentionInjector(nn.Module):
    """Every query cell attends to every support token; post-norm attention + FFN block, no key mask."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.attention = nn.MultiheadAttention(d, cfg.dsc_num_heads, dropout=cfg.dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), Dropout(cfg.dropout), nn.Linear(4 * d, d))
        self.dropout = Dropout(cfg.dropout)

    def forward(self, features: torch.Tensor, context: Context) -> torch.Tensor:
        b, d, h, w = features.shape
        support = context.support_features  # (B, N, D, h', w')
        x = features.flatten(2).transpose(1, 2)  # (B, H*W, D)
        kv = support.permute(0, 1, 3, 4, 2).reshape(b, -1, d)  # (B, N*h'*w', D)
        attended = attend(self.attention, x, kv)
        x = self.norm1(x + self.dropout(attended))
        x = self.norm2(x + self.dropout(self.ffn(x)))
        return x.transpose(1, 2).reshape(b, d, h, w)  # (B, D, H, W)
