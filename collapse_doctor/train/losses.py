"""Losses of docs/rlan-reference.md 2.3: stablemax cross-entropy in its exact form, the weighted and
focal modes, and RLANLoss's aggregation of the task term with the auxiliary losses.

Stablemax replaces exp with s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0 (TRM's choice); the
reference computes it in float64 with clamps, and casts the per-cell loss back to the logits dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from collapse_doctor.config import TrainingConfig
from collapse_doctor.encoding import IGNORE_INDEX  # noqa: F401  (re-exported)


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """s(x) = x + 1 for x >= 0, 1 / (1 - x + 1e-30) for x < 0, clamped to [1e-10, 1e10]."""
    return torch.where(x >= 0, x + 1.0, 1.0 / (1.0 - x.clamp(max=0) + 1e-30)).clamp(1e-10, 1e10)


def stablemax_log_probs(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """log p per class, float64, clamped to [-100, 0]; non-finite logits count as 0, non-finite results as -100."""
    z = torch.nan_to_num(logits.double().clamp(-1000, 1000), nan=0.0, posinf=0.0, neginf=0.0)
    s = stablemax_s(z)
    log_p = (torch.log(s) - torch.log(s.sum(dim=dim, keepdim=True) + 1e-10)).clamp(-100, 0)
    return torch.where(torch.isfinite(log_p), log_p, torch.full_like(log_p, -100.0))


def stablemax_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Per-cell loss (B, H, W) for logits (B, C, H, W); 0 at ignored cells, in the logits dtype."""
    valid = target != ignore_index
    log_p = stablemax_log_probs(logits, dim=1)
    picked = log_p.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)  # (B, H, W)
    return torch.where(valid, -picked, torch.zeros_like(picked)).to(logits.dtype)


# --------------------------------------------------------------------------------------------------
# Per-cell task loss of every training.loss_mode (reference 2.3, "Other modes")
# --------------------------------------------------------------------------------------------------
def class_weights(
    target: torch.Tensor, num_classes: int, bg_cap: float, fg_cap: float, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Per-batch class weights of the weighted modes: BG fixed at bg_cap; FG inverse batch frequency
    rescaled linearly to [1, fg_cap] (equal frequencies give (1 + cap) / 2, absent classes the cap);
    all clamped to [0.1, fg_cap]."""
    # Branch-free (no data-dependent shapes or `if`), so a seed batch can vmap it; the same float64
    # operations on the present classes as the plain formula, so the same weights to the last bit.
    classes = torch.arange(num_classes, device=target.device)
    hits = (target.unsqueeze(-1) == classes) & (target != ignore_index).unsqueeze(-1)
    counts = hits.flatten(0, -2).sum(0).double()  # (C,): cells per class; PAD and the ignore index count for none
    fg = counts[1:]
    present = fg > 0
    inverse = fg.sum() / torch.where(present, fg, torch.ones_like(fg))
    lo = torch.where(present, inverse, torch.full_like(inverse, math.inf)).min()
    hi = torch.where(present, inverse, torch.full_like(inverse, -math.inf)).max()
    spread = hi - lo
    scaled = torch.where(
        spread > 0,
        1.0 + (inverse - lo) / torch.where(spread > 0, spread, torch.ones_like(spread)) * (fg_cap - 1.0),
        torch.full_like(inverse, (1.0 + fg_cap) / 2),
    )
    fg_weights = torch.where(present, scaled, torch.full_like(scaled, float(fg_cap)))
    weights = torch.cat([torch.full((1,), float(bg_cap), dtype=torch.float64, device=target.device), fg_weights])
    return weights.clamp(0.1, fg_cap)


def task_loss_per_cell(logits: torch.Tensor, target: torch.Tensor, cfg: TrainingConfig) -> torch.Tensor:
    """(B, H, W) per-cell loss of cfg.loss_mode; 0 at ignored cells."""
    mode = cfg.loss_mode
    valid = target != IGNORE_INDEX
    safe = target.clamp(min=0).unsqueeze(1)
    if mode == "focal":
        log_p = torch.log_softmax(logits.double(), dim=1)
    else:
        log_p = stablemax_log_probs(logits, dim=1)
    log_pt = log_p.gather(1, safe).squeeze(1)  # (B, H, W) float64
    ce = (-log_pt).clamp(max=100.0)
    if mode == "stablemax":
        per_cell = ce
    elif mode in ("weighted_stablemax", "focal_weighted"):
        weights = class_weights(target, logits.shape[1], cfg.bg_weight_cap, cfg.fg_weight_cap)[safe.squeeze(1)]
        per_cell = weights * ce
        if mode == "focal_weighted":
            per_cell = per_cell * (1.0 - log_pt.exp()).clamp(min=0) ** cfg.focal_gamma
    else:  # focal_stablemax, focal: alpha for FG, 1 - alpha for BG
        alpha = torch.where(safe.squeeze(1) == 0, 1.0 - cfg.focal_alpha, cfg.focal_alpha)
        per_cell = alpha * (1.0 - log_pt.exp()).clamp(min=0) ** cfg.focal_gamma * ce
    return torch.where(valid, per_cell, torch.zeros_like(per_cell)).to(logits.dtype)


# --------------------------------------------------------------------------------------------------
# RLANLoss, the full aggregation path (reference 2.3, "How RLANLoss aggregates")
# --------------------------------------------------------------------------------------------------
@dataclass
class LossTerms:
    total: torch.Tensor
    terms: dict[str, torch.Tensor]  # each weighted term that is part of total, by name

    def as_floats(self) -> dict[str, float]:
        return {name: float(value.detach()) for name, value in self.terms.items()}


def rlan_loss(
    out, target: torch.Tensor, cfg: TrainingConfig, *, progress: float = 0.0, hpm_balance_weight: float = 0.0
) -> LossTerms:
    """Total training loss of one batch from an RLANOutput.

    The task term is each sample's summed per-cell loss over the whole canvas size (the reference's
    /900 at 30x30, so small grids weigh little), plus the per-sample min-clue hinge, averaged over the
    batch. The auxiliaries are added with their lambdas; terms whose lambda is 0 are not computed.
    """
    b, _, h, w = out.logits.shape
    cells = h * w
    per_cell = task_loss_per_cell(out.logits, target, cfg).float()
    task = per_cell.sum(dim=(1, 2)) / cells  # (B,)
    used = 1.0 - torch.sigmoid(out.clues.stop_logits.float())  # u_k (B, K)
    hinge = cfg.lambda_sparsity * cfg.min_clue_weight * torch.relu(cfg.min_clues - used.sum(dim=1))  # (B,)
    terms: dict[str, torch.Tensor] = {"task": task.mean(), "min_clue": hinge.mean()}

    normalised_entropy = out.clues.entropy.float()  # (B, K): H / ln(H*W)
    if cfg.lambda_entropy > 0:
        entropy_nats = normalised_entropy * math.log(cells)
        terms["entropy"] = cfg.lambda_entropy * entropy_nats.mean().abs().clamp(max=10.0)
    if cfg.lambda_sparsity > 0 and (cfg.ponder_weight > 0 or cfg.entropy_ponder_weight > 0):
        ponder = cfg.ponder_weight * used.sum(dim=1).mean()
        entropy_ponder = cfg.entropy_ponder_weight * (used * normalised_entropy).sum(dim=1).mean()
        terms["ponder"] = cfg.lambda_sparsity * (ponder + entropy_ponder)
    if cfg.lambda_curriculum > 0:
        k = used.shape[1]
        reached = torch.cumprod(used, dim=1).sum(dim=1)  # clue k counts only if no earlier clue stopped
        terms["curriculum"] = cfg.lambda_curriculum * torch.relu(reached - (1 + progress * (k - 1))).mean()
    if cfg.lambda_deep_supervision > 0 and len(out.all_logits) > 1:
        valid = (target != IGNORE_INDEX).sum().clamp(min=1)
        steps = [
            task_loss_per_cell(step_logits, target, cfg).float().sum() / valid for step_logits in out.all_logits[:-1]
        ]
        terms["deep_supervision"] = cfg.lambda_deep_supervision * torch.stack(steps).mean()
    if hpm_balance_weight > 0 and out.hpm_balance_loss is not None:
        terms["hpm_balance"] = hpm_balance_weight * out.hpm_balance_loss.float()
    return LossTerms(sum(terms.values()), terms)
