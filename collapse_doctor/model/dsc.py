"""DSC, the Dynamic Saliency Controller: K sequential clue queries attend over the cells.

Follows docs/rlan-reference.md 1.7. With use_dsc off, RLAN uses `anchor_clues` instead: K anchors at the
grid centre with uniform attention over valid cells and zero stop logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from collapse_doctor.config import ModelConfig
from collapse_doctor.model.dropout import Dropout


@dataclass
class Clues:
    centroids: torch.Tensor  # (B, K, 2) row, col
    attention: torch.Tensor  # (B, K, H, W), each map sums to 1
    stop_logits: torch.Tensor  # (B, K)
    entropy: torch.Tensor  # (B, K) attention entropy / ln(H*W)


def cell_coordinates(h: int, w: int, device: torch.device) -> torch.Tensor:
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([rows, cols], dim=-1).reshape(h * w, 2).float()  # (H*W, 2)


class DynamicSaliencyController(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, k = cfg.hidden_dim, cfg.max_clues
        self.num_clues = k
        self.clue_queries = nn.Parameter(torch.empty(k, d))
        nn.init.xavier_uniform_(self.clue_queries.view(1, k, d))  # bound sqrt(6 / (K*D + D)), as the reference
        self.feature_norm = nn.LayerNorm(d)
        self.query_norm = nn.LayerNorm(d)
        self.query_proj = nn.Linear(d, d)
        self.key_proj = nn.Linear(d, d)
        self.value_proj = nn.Linear(d, d)
        self.state_cell = nn.GRUCell(d, d)
        self.stop_mlp = nn.Sequential(nn.Linear(d + 1, d // 2), nn.GELU(), Dropout(cfg.dropout), nn.Linear(d // 2, 1))
        first, last = self.stop_mlp[0], self.stop_mlp[3]
        with torch.no_grad():
            nn.init.kaiming_normal_(first.weight[:, :d], mode="fan_in")
            first.weight[:, d:].normal_(1.5, 0.5)  # the entropy column
            first.bias.zero_()
            last.weight.normal_(0.0, 0.1)
            last.bias.fill_(-1.0)  # sigmoid(-1) = 0.27: about 5 of 7 clues "used" at init

    def forward(self, features: torch.Tensor, valid: torch.Tensor, temperature: float = 1.0) -> Clues:
        b, d, h, w = features.shape
        x = self.feature_norm(features.flatten(2).transpose(1, 2))  # (B, H*W, D)
        keys, values = self.key_proj(x), self.value_proj(x)  # (B, H*W, D)
        coords = cell_coordinates(h, w, features.device)  # (H*W, 2)
        mask = valid.flatten(1).to(x.dtype)  # (B, H*W)
        state = x.new_zeros(b, d)
        centroids, maps, stops, entropies = [], [], [], []
        log_cells = math.log(h * w)
        for k in range(self.num_clues):
            q = self.query_proj(self.query_norm(self.clue_queries[k] + state))  # (B, D)
            score = torch.einsum("bnd,bd->bn", keys, q) / math.sqrt(d)  # (B, H*W)
            score = (score + torch.log(mask.clamp(min=1e-6))).clamp(-50, 50)
            score = (score / temperature).clamp(-50, 50)
            attn = torch.softmax(score, dim=-1).clamp(min=1e-8)  # (B, H*W)
            attended = torch.einsum("bn,bnd->bd", attn, values)  # (B, D)
            state = self.state_cell(attended, state)
            p = attn.clamp(1e-6, 1.0)
            entropy = -(p * p.log()).sum(-1) / log_cells  # (B,)
            stop = 4.0 * torch.tanh(self.stop_mlp(torch.cat([attended, entropy[:, None]], dim=-1)).squeeze(-1) / 4.0)
            centroids.append(attn @ coords)  # (B, 2)
            maps.append(attn.reshape(b, h, w))
            stops.append(stop)
            entropies.append(entropy)
            mask = (mask * (1 - 0.9 * attn.detach())).clamp(min=1e-6)
        return Clues(torch.stack(centroids, 1), torch.stack(maps, 1), torch.stack(stops, 1), torch.stack(entropies, 1))


def anchor_clues(valid: torch.Tensor, sizes: torch.Tensor, num_clues: int) -> Clues:
    """use_dsc off: K identical anchors at the grid centre, uniform attention over valid cells, stop logits 0."""
    b, h, w = valid.shape
    attn = valid.float() / valid.float().sum(dim=(1, 2), keepdim=True).clamp(min=1)  # (B, H, W)
    centre = (sizes - 1) / 2  # (B, 2)
    return Clues(
        centroids=centre[:, None].expand(b, num_clues, 2),
        attention=attn[:, None].expand(b, num_clues, h, w),
        stop_logits=valid.new_zeros(b, num_clues, dtype=torch.float32),
        entropy=valid.new_zeros(b, num_clues, dtype=torch.float32),
    )
