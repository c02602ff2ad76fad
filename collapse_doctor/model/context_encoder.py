"""ContextEncoder: encodes the demonstration pairs, as spatial support features or as one context vector.

Follows docs/rlan-reference.md 1.3. The spatial path runs when any of CrossAttentionInjector,
SolverCrossAttention or HyperLoRA is built (ModelConfig.needs_spatial_features), the vector path
otherwise (2a50f2d). Pairs are encoded in one batched call rather than pair by pair (same result).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from collapse_doctor.config import ModelConfig
from collapse_doctor.encoding import PAD
from collapse_doctor.model.dropout import Dropout


def conv_block(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(8, c_out), nn.GELU()]


@dataclass
class Context:
    """What the ContextEncoder hands on: spatial support features, a context vector, or both None."""

    support_features: torch.Tensor | None = None  # (B, N, D, h, w)
    vector: torch.Tensor | None = None  # (B, D)

    def pooled(self) -> torch.Tensor | None:
        """(B, D): the vector, or the mean of the support features over pairs and positions.

        As in the reference's pool_context_from_support, zeroed (invalid) pairs and every canvas
        position, padding included, count in the mean.
        """
        if self.vector is not None:
            return self.vector
        if self.support_features is None:
            return None
        return self.support_features.mean(dim=(1, 3, 4))


class SpatialPairEncoder(nn.Module):
    """One (input, output) pair -> (B, D, H, W) pair features."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, size = cfg.hidden_dim, cfg.max_grid_size
        self.color_embed = nn.Embedding(cfg.num_colors + 1, d // 2)  # PyTorch default N(0, 1) init, as the reference
        self.pos_embed = nn.Parameter(torch.randn(1, size, size, d // 2) * 0.02)
        self.embed_proj = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d))
        self.input_branch = nn.Sequential(*conv_block(d, d, 3), *conv_block(d, d, 3))
        self.output_branch = nn.Sequential(*conv_block(d, d, 3), *conv_block(d, d, 3))
        self.diff_branch = nn.Sequential(*conv_block(3 * d, d, 1), *conv_block(d, d, 3))

    def embed(self, grid: torch.Tensor) -> torch.Tensor:
        h, w = grid.shape[-2:]
        x = torch.cat(
            [self.color_embed(grid.clamp(0, PAD)), self.pos_embed[:, :h, :w].expand(grid.shape[0], -1, -1, -1)], dim=-1
        )
        return self.embed_proj(x).permute(0, 3, 1, 2)  # (B, D, H, W)

    def forward(self, inp: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        a = self.input_branch(self.embed(inp))  # (B, D, H, W)
        b = self.output_branch(self.embed(out))  # (B, D, H, W)
        return self.diff_branch(torch.cat([a, b, b - a], dim=1))  # (B, D, H, W)


class SpatialDownsampler(nn.Module):
    """AdaptiveAvgPool to a target size s, conv, GroupNorm, GELU, plus a learned (1, D, s, s) position."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, s = cfg.hidden_dim, cfg.spatial_downsample
        self.pool = nn.AdaptiveAvgPool2d(s)
        self.refine = nn.Sequential(*conv_block(d, d, 3))
        self.pos = nn.Parameter(torch.randn(1, d, s, s) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.refine(self.pool(x)) + self.pos  # (B*N, D, s, s)


class ContextEncoder(nn.Module):
    """Support pairs (B, N, H, W) x2 + pair mask (B, N) -> Context."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.spatial = cfg.needs_spatial_features
        self.pair_encoder = SpatialPairEncoder(cfg)
        if self.spatial:
            self.downsampler = SpatialDownsampler(cfg) if cfg.spatial_downsample > 1 else None
        else:
            # Legacy vector path (2a50f2d): pool each pair, then a learned query attends over the pairs.
            self.pair_pool_proj = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d))
            self.query = nn.Parameter(torch.randn(1, 1, d) * 0.02)
            self.attention = nn.MultiheadAttention(d, 4, dropout=cfg.dropout, batch_first=True)
            self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), Dropout(cfg.dropout), nn.Linear(4 * d, d))
            self.ffn_norm = nn.LayerNorm(d)

    def forward(self, support_inputs: torch.Tensor, support_outputs: torch.Tensor, pair_mask: torch.Tensor) -> Context:
        b, n, h, w = support_inputs.shape
        feats = self.pair_encoder(
            support_inputs.reshape(b * n, h, w), support_outputs.reshape(b * n, h, w)
        )  # (B*N, D, H, W)
        if self.spatial:
            if self.downsampler is not None:
                feats = self.downsampler(feats)  # (B*N, D, s, s)
            feats = feats.reshape(b, n, *feats.shape[1:])  # (B, N, D, h, w)
            return Context(support_features=feats * pair_mask[:, :, None, None, None].to(feats.dtype))
        pair_vectors = self.pair_pool_proj(feats.mean(dim=(2, 3))).reshape(b, n, -1)  # (B, N, D)
        query = self.query.expand(b, -1, -1)  # (B, 1, D)
        attended, _ = self.attention(query, pair_vectors, pair_vectors, key_padding_mask=~pair_mask, need_weights=False)
        context = attended.squeeze(1)  # (B, D)
        return Context(vector=self.ffn_norm(context + self.ffn(context)))
