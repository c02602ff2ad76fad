"""Task losses of docs/rlan-reference.md 2.3. This file holds stablemax cross-entropy in its exact form.

Stablemax replaces exp with s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0 (TRM's choice); the
reference computes it in float64 with clamps, and casts the per-cell loss back to the logits dtype.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """s(x) = x + 1 for x >= 0, 1 / (1 - x + 1e-30) for x < 0, clamped to [1e-10, 1e10]."""
    return torch.where(x >= 0, x + 1.0, 1.0 / (1.0 - x.clamp(max=0) + 1e-30)).clamp(1e-10, 1e10)


def stablemax_log_probs(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """log p per class, float64, clamped to [-100, 0]; non-finite logits count as 0, non-finite results as -100."""
    z = torch.nan_to_num(logits.double().clamp(-1000, 1000), nan=0.0, posinf=0.0, neginf=0.0)
    s = stablemax_s(z)
    log_p = (torch.log(s) - torch.log(s.sum(dim=dim, keepdim=True) + 1e-10)).clamp(-100, 0)
    return torch.where(torch.isfinite(log_p), log_p, torch.full_like(log_p, -100.0))


def stablemax_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Per-cell loss (B, H, W) for logits (B, C, H, W); 0 at ignored cells, in the logits dtype."""
    valid = target != ignore_index
    log_p = stablemax_log_probs(logits, dim=1)
    picked = log_p.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)  # (B, H, W)
    return torch.where(valid, -picked, torch.zeros_like(picked)).to(logits.dtype)
