"""Gradients compared parameter by parameter and summed up per module, with the tolerance of each mode."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from collapse_doctor.train.step import grad_group


@dataclass(frozen=True)
class Tolerance:
    """A gradient matches when its relative L2 difference is at most `rel_l2`, or every element
    differs by at most `abs_floor` (for gradients so small that relative measures are meaningless).
    Two identical CPU runs are bit-identical (measured and reported as `baseline`), so the noise floor
    cannot be measured from them; the values follow the dtype's precision instead (docs/grad-check.md)."""

    rel_l2: float
    abs_floor: float


TOLERANCES = {
    "float32": Tolerance(rel_l2=1e-6, abs_floor=1e-9),  # ~8 float32 ulps (eps 1.2e-7) of reordered sums
    "bfloat16": Tolerance(rel_l2=1e-2, abs_floor=1e-6),  # ~1 bf16 ulp (eps 7.8e-3) under autocast
}


def grad_state(g: torch.Tensor | None) -> str:
    """Optimizers treat a None gradient (skipped) differently from a zero one (decayed, moments updated)."""
    if g is None:
        return "none"
    return "zero" if not torch.any(g != 0) else "nonzero"


@dataclass
class ParamDiff:
    name: str
    module: str
    reference: str  # none / zero / nonzero
    checkpointed: str
    max_abs: float
    max_rel: float
    rel_l2: float
    cosine: float | None
    match: bool


def compare_grads(ref: torch.Tensor | None, ckpt: torch.Tensor | None, name: str, tol: Tolerance) -> ParamDiff:
    a_state, b_state = grad_state(ref), grad_state(ckpt)
    if ref is None or ckpt is None:
        return ParamDiff(
            name,
            grad_group(name),
            a_state,
            b_state,
            math.nan if a_state != b_state else 0.0,
            math.nan if a_state != b_state else 0.0,
            0.0 if a_state == b_state else 1.0,
            None,
            a_state == b_state,
        )
    a, b = ref.double(), ckpt.double()
    diff = (a - b).abs()
    max_abs = float(diff.max()) if diff.numel() else 0.0
    max_rel = float((diff / a.abs().clamp(min=1e-30)).max()) if diff.numel() else 0.0
    norms = float(a.norm() + b.norm())
    rel_l2 = float((a - b).norm()) / norms if norms > 0 else 0.0
    cosine = (
        float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))
        if a.norm() > 0 and b.norm() > 0
        else None
    )
    finite = math.isfinite(max_abs) and math.isfinite(rel_l2)
    match = a_state == b_state and finite and (rel_l2 <= tol.rel_l2 or max_abs <= tol.abs_floor)
    return ParamDiff(name, grad_group(name), a_state, b_state, max_abs, max_rel, rel_l2, cosine, match)


@dataclass
class ModuleDiff:
    module: str
    params: int
    reference: dict[str, int]  # none / zero / nonzero counts
    checkpointed: dict[str, int]
    max_abs: float
    max_rel: float
    rel_l2: float  # worst parameter
    cosine: float | None  # worst parameter
    match: bool


def by_module(diffs: list[ParamDiff]) -> list[ModuleDiff]:
    groups: dict[str, list[ParamDiff]] = {}
    for d in diffs:
        groups.setdefault(d.module, []).append(d)
    out = []
    for module, items in groups.items():
        cosines = [d.cosine for d in items if d.cosine is not None]

        def counts(side: str) -> dict[str, int]:
            return {state: sum(1 for d in items if getattr(d, side) == state) for state in ("none", "zero", "nonzero")}

        out.append(
            ModuleDiff(
                module,
                len(items),
                counts("reference"),
                counts("checkpointed"),
                _worst([d.max_abs for d in items]),
                _worst([d.max_rel for d in items]),
                _worst([d.rel_l2 for d in items]),
                min(cosines) if cosines else None,
                all(d.match for d in items),
            )
        )
    return out


def _worst(values: list[float]) -> float:
    return math.nan if any(math.isnan(v) for v in values) else max(values, default=0.0)
