"""One optimizer step's skeleton, shared by the lone trainer and the seed batch (K models as one): what a
step records micro-batch by micro-batch (cell counts, loss terms, gate saturation, LoRA delta norms,
non-finite losses), the skip rule for non-finite steps, gradient norms per module, and the metrics row.

Each trainer runs its own forward and backward passes (one model; K vmapped models) and feeds every
micro-batch to a `StepRecord` per model; the record decides what the reference's non-finite skip
decides, and writes the row. So a training feature that changes what a step measures or skips is
written here once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from collapse_doctor.config.schedule import Schedule, Stage
from collapse_doctor.encoding import IGNORE_INDEX, PAD
from collapse_doctor.judge.counts import CellCounts
from collapse_doctor.model.hyper_lora import LORA_TARGETS


# --------------------------------------------------------------------------------------------------
# Gradient norms
# --------------------------------------------------------------------------------------------------
def grad_group(name: str) -> str:
    """Module a parameter's gradient norm is reported under: top-level modules, the solver split in parts."""
    parts = name.split(".")
    if parts[0] == "solver" and len(parts) > 2 and parts[1] in ("gru", "solver_context", "output_head"):
        return f"solver.{parts[1]}"
    return parts[0]


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------
def step_counts(num_classes: int) -> CellCounts:
    """Counts over the real grid's cells: the ignore index and PAD (a class only without ignore_padding_in_loss) are not cells."""
    return CellCounts(num_classes, ignore=(IGNORE_INDEX, PAD))


def norms_by_group(names: list[str], norms: torch.Tensor) -> dict[str, float]:
    """Per-parameter gradient L2 norms (P,) combined per module (grad_group) and in total (nan when non-finite)."""
    groups = [grad_group(name) for name in names]
    order = sorted(set(groups))
    index = torch.tensor([order.index(g) for g in groups], device=norms.device)
    squares = torch.zeros(len(order), dtype=norms.dtype, device=norms.device).index_add_(0, index, norms.square())
    values = squares.sqrt().tolist()
    out = dict(zip(order, values))
    total = math.sqrt(sum(v * v for v in values))
    out["total"] = total if all(math.isfinite(v) for v in values) else float("nan")
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


# --------------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------------
STAGED = (
    ("hyper_lora", "hyper_lora on"),
    ("solver_context", "solver_context on"),
    ("cross_attention", "cross_attention on"),
    ("hpm", "hpm on"),
    ("loo", "loo loss on"),
    ("equivariance", "equivariance loss on"),
)


def stage_events(schedule: Schedule, before: Stage | None, stage: Stage, step: int) -> list[dict]:
    """Event rows for every module or loss that is live at `stage` and was not at `before`."""
    built = {s.module: s.built for s in schedule.modules} | {"loo": True, "equivariance": True}
    rows = []
    for attr, label in STAGED:
        now = getattr(stage, attr)
        was = getattr(before, attr) if before is not None else None
        live_now = built[attr] and now not in (None, False)
        live_before = before is not None and was not in (None, False)
        if live_now and not live_before:
            rows.append({"step": step, "epoch": stage.epoch, "event": label})
    return rows


def metrics_row(
    *,
    step: int,
    stage: Stage,
    counts: CellCounts,
    totals: list[float],
    terms: dict[str, list[float]],
    grad_norms: dict[str, float],
    gradient_clip: float,
    delta_norms: dict[str, list[float]] | None,
    saturation: torch.Tensor,
    nonfinite_loss: int,
    grads_finite: bool,
    params_finite: bool,
    took_step: bool,
    consecutive_nonfinite: int,
) -> dict:
    """One step's metrics row (JSON-safe); `saturation` is the step's mean (reset, update) share."""
    row = {
        "step": step,
        "epoch": stage.epoch,
        **counts.row(),
        "loss": _mean(totals),
        "loss_terms": {name: _mean(values) for name, values in terms.items()},
        "grad_norm": {k: v for k, v in grad_norms.items() if k != "total"},
        "grad_norm_total": grad_norms["total"],
        "clipped": bool(grads_finite and grad_norms["total"] > gradient_clip),
        "lora_delta_norm": {k: _mean(v) for k, v in delta_norms.items()} if delta_norms is not None else None,
        "gate_saturation": {"reset": float(saturation[0]), "update": float(saturation[1])},
        "temperature": stage.temperature,
        "nonfinite_loss_batches": nonfinite_loss,
        "grads_finite": grads_finite,
        "params_finite": params_finite,
        "skipped": not took_step,
        "consecutive_nonfinite": consecutive_nonfinite,
    }
    return _clean(row)


# --------------------------------------------------------------------------------------------------
# One step of one model
# --------------------------------------------------------------------------------------------------
@dataclass
class StepRecord:
    """What one optimizer step of one model measured, micro-batch by micro-batch, and its skip rule:
    a micro-batch whose loss is not finite is left out (the caller wipes what was accumulated, as the
    reference does); the step is taken only when some micro-batch was finite and so are the gradients."""

    counts: CellCounts
    terms: dict[str, list[float]] = field(default_factory=dict)
    totals: list[float] = field(default_factory=list)
    saturation: list[torch.Tensor] = field(default_factory=list)
    delta_norms: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in LORA_TARGETS})
    nonfinite_loss: int = 0  # micro-batches whose loss was not finite

    @classmethod
    def start(cls, num_classes: int) -> StepRecord:
        return cls(step_counts(num_classes))

    def add(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        saturation: torch.Tensor,
        delta_norms: dict[str, float],
        terms: dict[str, float],
        total: float,
    ) -> bool:
        """One micro-batch's forward pass; False when its loss is not finite (it takes no backward pass)."""
        self.counts.add(logits, target)
        self.saturation.append(saturation)
        for name, value in delta_norms.items():
            self.delta_norms[name].append(value)
        for name, value in terms.items():
            self.add_term(name, value)
        self.totals.append(total)
        if math.isfinite(total):
            return True
        self.nonfinite_loss += 1
        return False

    def add_term(self, name: str, value: float) -> None:
        self.terms.setdefault(name, []).append(value)

    def takes_step(self, grads_finite: bool, accumulation: int) -> bool:
        return grads_finite and self.nonfinite_loss < accumulation

    def consecutive_nonfinite(self, before: int, grads_finite: bool) -> int:
        """Non-finite steps in a row, this one included (the probe stops at verdict.nonfinite_budget)."""
        return before + 1 if self.nonfinite_loss > 0 or not grads_finite else 0

    def row(
        self,
        *,
        step: int,
        stage: Stage,
        grad_norms: dict[str, float],
        gradient_clip: float,
        lora_live: bool,
        grads_finite: bool,
        params_finite: bool,
        took_step: bool,
        consecutive_nonfinite: int,
    ) -> dict:
        return metrics_row(
            step=step,
            stage=stage,
            counts=self.counts,
            totals=self.totals,
            terms=self.terms,
            grad_norms=grad_norms,
            gradient_clip=gradient_clip,
            delta_norms=self.delta_norms if lora_live else None,
            saturation=torch.stack(self.saturation).mean(dim=0),
            nonfinite_loss=self.nonfinite_loss,
            grads_finite=grads_finite,
            params_finite=params_finite,
            took_step=took_step,
            consecutive_nonfinite=consecutive_nonfinite,
        )


def _clean(value):
    """JSON-safe: non-finite floats become the strings 'nan', 'inf', '-inf' (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
