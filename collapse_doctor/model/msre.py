"""MSRE, Multi-Scale Relative Encoding: each cell's position relative to each clue centroid, fused into features.

Follows docs/rlan-reference.md 1.8.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from collapse_doctor.config import ModelConfig


class MultiScaleRelativeEncoding(nn.Module):
    """features (B, D, H, W) + centroids (B, K, 2) + grid sizes (B, 2) -> clue features (B, K, D, H, W)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, enc, f = cfg.hidden_dim, cfg.msre_encoding_dim, cfg.msre_num_freq
        self.register_buffer("freqs", (2.0 ** torch.arange(f)) * math.pi, persistent=False)
        raw = 6
        self.coord_encoder = nn.Sequential(
            nn.Linear(raw + 2 * raw * f, d), nn.GELU(), nn.Linear(d, enc), nn.LayerNorm(enc)
        )
        self.fusion = nn.Sequential(nn.Linear(d + enc, d), nn.GELU(), nn.LayerNorm(d))
        self.canvas = cfg.max_grid_size

    def coordinates(self, centroids: torch.Tensor, sizes: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, K, H, W, 6): absolute offsets, size-relative offsets, log radius, angle."""
        rows = torch.arange(h, device=centroids.device, dtype=centroids.dtype)[None, None, :, None]
        cols = torch.arange(w, device=centroids.device, dtype=centroids.dtype)[None, None, None, :]
        dr = (rows - centroids[..., 0, None, None]).expand(-1, -1, h, w)  # (B, K, H, W)
        dc = (cols - centroids[..., 1, None, None]).expand(-1, -1, h, w)
        extent = sizes.max(dim=1).values[:, None, None, None]  # (B, 1, 1, 1)
        diagonal = torch.log(torch.sqrt(sizes[:, 0] ** 2 + sizes[:, 1] ** 2) + 1)[:, None, None, None]
        radius = torch.log(torch.sqrt(dr**2 + dc**2 + 1e-6) + 1) / diagonal
        angle = (torch.atan2(dc, dr) + math.pi) / (2 * math.pi)
        return torch.stack([dr / self.canvas, dc / self.canvas, dr / extent, dc / extent, radius, angle], dim=-1)

    def forward(self, features: torch.Tensor, centroids: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        b, d, h, w = features.shape
        k = centroids.shape[1]
        raw = self.coordinates(centroids, sizes, h, w)  # (B, K, H, W, 6)
        angles = raw[..., None] * self.freqs  # (B, K, H, W, 6, F)
        fourier = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # (B, K, H, W, 12F)
        code = self.coord_encoder(torch.cat([raw, fourier], dim=-1))  # (B, K, H, W, enc)
        feats = features.permute(0, 2, 3, 1)[:, None].expand(b, k, h, w, d)  # (B, K, H, W, D)
        fused = self.fusion(torch.cat([feats, code], dim=-1))  # (B, K, H, W, D)
        return fused.permute(0, 1, 4, 2, 3)  # (B, K, D, H, W)
