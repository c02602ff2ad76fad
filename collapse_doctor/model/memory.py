"""HPM, Hierarchical Primitive Memory v2: static primitive banks and dynamic buffers behind a top-k router.

Follows docs/rlan-reference.md 1.6. Dynamic banks are in-memory ring buffers (the reference used
FAISS); empty buffers return zeros, as in the reference. RLAN adds the output to every pixel, which is
not an identity even while the gate is closed (reference 1.6, kept on purpose).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from collapse_doctor.config import ModelConfig


class StaticBank(nn.Module):
    """Learned primitives split over levels; per level softmax attention, levels mixed by learned weights."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, n, levels = cfg.hidden_dim, cfg.hpm_primitives_per_bank, cfg.hpm_levels_per_bank
        self.query_proj = nn.Linear(d, d, bias=False)
        nn.init.eye_(self.query_proj.weight)
        self.primitives = nn.Parameter(torch.randn(n, d) * 0.02)
        per_level = n // levels
        self.level_sizes = [per_level] * (levels - 1) + [n - per_level * (levels - 1)]  # 32 over 3 -> 10/10/12
        self.level_weights = nn.Parameter(torch.zeros(levels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        q = self.query_proj(z)  # (B, D)
        outs = []
        for prims in torch.split(self.primitives, self.level_sizes):
            attn = torch.softmax(q @ prims.T / math.sqrt(q.shape[-1]), dim=-1)  # (B, n_level)
            outs.append(attn @ prims)  # (B, D)
        mix = torch.softmax(self.level_weights, dim=0)
        return torch.einsum("l,lbd->bd", mix, torch.stack(outs))  # (B, D)


class DynamicBank(nn.Module):
    """A buffer of (key, value) entries; a query attends over the k entries most similar to it."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.query_proj = nn.Linear(d, d, bias=False)
        nn.init.eye_(self.query_proj.weight)
        self.capacity = cfg.hpm_memory_size
        self.retrieval_k = cfg.hpm_retrieval_k
        self.register_buffer("keys", torch.zeros(0, d), persistent=False)
        self.register_buffer("values", torch.zeros(0, d), persistent=False)

    def store(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Append entries (detached); the oldest fall out past the capacity."""
        self.keys = torch.cat([self.keys, keys.detach()])[-self.capacity :]
        self.values = torch.cat([self.values, values.detach()])[-self.capacity :]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.keys.shape[0] == 0:
            return torch.zeros_like(z)
        q = self.query_proj(z)  # (B, D)
        scores = q @ self.keys.T / math.sqrt(q.shape[-1])  # (B, M)
        top, idx = scores.topk(min(self.retrieval_k, self.keys.shape[0]), dim=-1)  # (B, k)
        return torch.einsum("bk,bkd->bd", torch.softmax(top, dim=-1), self.values[idx])  # (B, D)


class Router(nn.Module):
    """MLP logits over banks; softmax of the top-k logits at a learned temperature softplus(t) + 0.1."""

    def __init__(self, cfg: ModelConfig, n_banks: int):
        super().__init__()
        d = cfg.hidden_dim
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, n_banks))
        self.temperature = nn.Parameter(torch.tensor(1.0))
        self.top_k = cfg.hpm_top_k

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.mlp(z)  # (B, n_banks)
        top, idx = logits.topk(self.top_k, dim=-1)
        weights = torch.softmax(top / (F.softplus(self.temperature) + 0.1), dim=-1)
        sparse = torch.zeros_like(logits).scatter(1, idx, weights)  # (B, n_banks)
        return sparse, torch.softmax(logits, dim=-1)


class HPM(nn.Module):
    """Pooled context z (B, D) -> z + tanh(g) * memory (B, D), plus the router's load-balance loss."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.hidden_dim
        self.static_banks = nn.ModuleDict({name: StaticBank(cfg) for name in cfg.hpm_static_banks})
        self.dynamic_banks = nn.ModuleDict({name: DynamicBank(cfg) for name in cfg.hpm_dynamic_banks})
        n_banks = len(self.static_banks) + len(self.dynamic_banks)
        self.router = Router(cfg, n_banks)
        if cfg.hpm_use_cross_attention:
            self.aggregator = nn.MultiheadAttention(d, 4, batch_first=True)
            self.aggregator_norm = nn.LayerNorm(d)
            self.blend = nn.Parameter(torch.tensor(0.5))
        else:
            self.aggregator = None
        self.out_proj = nn.Linear(d, d)
        with torch.no_grad():
            self.out_proj.weight.copy_(0.1 * torch.eye(d))
            self.out_proj.bias.zero_()
        self.gate = nn.Parameter(torch.tensor(0.0))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        banks = [bank(z) for bank in self.static_banks.values()] + [bank(z) for bank in self.dynamic_banks.values()]
        stacked = torch.stack(banks, dim=1)  # (B, n_banks, D)
        weights, probs = self.router(z)  # (B, n_banks) x2
        routed = torch.einsum("bn,bnd->bd", weights, stacked)  # (B, D)
        if self.aggregator is not None:
            attended, _ = self.aggregator(z[:, None], stacked, stacked, need_weights=False)
            blend = torch.sigmoid(self.blend)
            routed = self.aggregator_norm(blend * routed + (1 - blend) * attended.squeeze(1))
        memory = self.out_proj(routed)  # (B, D)
        # Load balance n * sum_b f_b * P_b: f = share of samples routed to each bank, P = mean router probability.
        n_banks = stacked.shape[1]
        balance = n_banks * ((weights > 0).float().mean(0) * probs.mean(0)).sum()
        return z + torch.tanh(self.gate) * memory, balance
