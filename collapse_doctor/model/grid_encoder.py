"""GridEncoder and feature projection: colour + 2-D position embedding of the query grid.

Follows docs/rlan-reference.md 1.2 (GridEncoder) and 1.0 step 1 (feature_proj).
Deliberate difference: the learned position table behind `use_learned_pos` is a (S, S, D/2) table with
N(0, 0.02^2) init; the reference does not specify its shape.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from collapse_doctor.config import ModelConfig
from collapse_doctor.encoding import PAD  # noqa: F401  (re-exported: model inputs are padded with it)
from collapse_doctor.model.dropout import Dropout


def sinusoidal_position_table(size: int, dim: int) -> torch.Tensor:
    """(size, size, dim): the first dim/2 channels encode the row, the next dim/2 the column."""
    half = dim // 2
    freqs = torch.exp(-torch.arange(0, half, 2, dtype=torch.float32) * (math.log(10000.0) / half))  # (half/2,)
    pos = torch.arange(size, dtype=torch.float32)[:, None] * freqs[None, :]  # (size, half/2)
    one_axis = torch.zeros(size, half)
    one_axis[:, 0::2] = torch.sin(pos)
    one_axis[:, 1::2] = torch.cos(pos)
    rows = one_axis[:, None, :].expand(size, size, half)
    cols = one_axis[None, :, :].expand(size, size, half)
    return torch.cat([rows, cols], dim=-1)  # (size, size, dim)


class GridEncoder(nn.Module):
    """(B, H, W) colour ids (PAD = 10) -> (B, H, W, D) features."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.color_embed = nn.Embedding(cfg.num_colors + 1, d // 2)
        nn.init.trunc_normal_(
            self.color_embed.weight, std=1.0 / math.sqrt(d), a=-2.0 / math.sqrt(d), b=2.0 / math.sqrt(d)
        )
        size = cfg.max_grid_size
        if cfg.use_learned_pos:
            self.learned_pos = nn.Parameter(torch.randn(size, size, d // 2) * 0.02)
        else:
            self.learned_pos = None
            self.register_buffer("sinusoidal_pos", sinusoidal_position_table(size, d // 2), persistent=False)
        self.proj = nn.Linear(d, d)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.norm = nn.LayerNorm(d)
        self.dropout = Dropout(cfg.dropout)
        self.embed_scale = math.sqrt(d)  # the reference's "TRM-style embed scale"

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        b, h, w = grid.shape
        colour = self.color_embed(grid.clamp(0, PAD))  # (B, H, W, D/2)
        table = self.learned_pos if self.learned_pos is not None else self.sinusoidal_pos
        pos = table[:h, :w].unsqueeze(0).expand(b, h, w, -1)  # (B, H, W, D/2)
        x = self.proj(torch.cat([colour, pos], dim=-1))  # (B, H, W, D)
        return self.dropout(self.norm(x)) * self.embed_scale


class FeatureProjection(nn.Module):
    """Linear, GELU, LayerNorm, then channel-first: (B, H, W, D) -> (B, D, H, W)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.net = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).permute(0, 3, 1, 2).contiguous()  # (B, D, H, W)


def valid_mask(grid: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: cells that are not padding."""
    return grid != PAD


def grid_sizes(grid: torch.Tensor) -> torch.Tensor:
    """(B, 2) float: last valid row + 1 and last valid column + 1 (at least 1)."""
    valid = valid_mask(grid)
    h, w = grid.shape[-2:]
    rows = torch.arange(1, h + 1, device=grid.device)
    cols = torch.arange(1, w + 1, device=grid.device)
    last_row = (valid.any(dim=2) * rows).amax(dim=1).clamp(min=1)
    last_col = (valid.any(dim=1) * cols).amax(dim=1).clamp(min=1)
    return torch.stack([last_row, last_col], dim=1).float()
