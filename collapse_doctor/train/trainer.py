"""The trainer of reference section 2, one optimizer step at a time, with a metrics row per step.

Per optimizer step: `grad_accumulation_steps` batches, each forward under the step's `Stage`, RLANLoss
divided by the accumulation, then (from their start epoch) the LOO and equivariance losses with their
own immediate backward passes. Then the gradient norm per module is measured before clipping, a step
with non-finite gradients is skipped and counted, the rest are clipped and taken by AdamW with
per-module learning rates, and the EMA (evaluation only) is updated.

Metrics describe the raw weights on the step's own training batches, before the update (row `step`
0 is the initialisation), pooled over valid cells. No wall-clock time goes into a row, so the same
seed gives the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from contextlib import nullcontext

import torch

from collapse_doctor.config import Config, DeviceConfig
from collapse_doctor.config.schedule import Schedule, Stage
from collapse_doctor.data.arc import Task
from collapse_doctor.data.stream import SampleStream
from collapse_doctor.encoding import IGNORE_INDEX, PAD
from collapse_doctor.judge.counts import CellCounts
from collapse_doctor.model.hyper_lora import LORA_TARGETS
from collapse_doctor.model.rlan import RLAN, build_model
from collapse_doctor.train.ema import EMA
from collapse_doctor.train.losses import rlan_loss
from collapse_doctor.train.meta import equivariance_loss, loo_loss

NO_DECAY_WORDS = ("bias", "norm", "embedding")  # the reference's name heuristic (2.5), quirks included


# --------------------------------------------------------------------------------------------------
# Optimizer
# --------------------------------------------------------------------------------------------------
def lr_multiplier(name: str, config: Config) -> float:
    t = config.training
    if name.startswith("dsc.") or ".dsc." in name:
        return t.dsc_lr_multiplier
    if ".msre." in name or name.startswith("msre."):
        return t.msre_lr_multiplier
    if "hyper_lora" in name:
        return t.hyperlora_lr_multiplier
    return 1.0


def parameter_groups(model: RLAN | Iterable[tuple[str, torch.Tensor]], config: Config) -> list[dict]:
    """AdamW groups by name (reference 2.5): LR x module multiplier; no weight decay for names
    containing bias/norm/embedding (which misses norms inside nn.Sequential, as in the reference).
    Takes a model or (name, parameter) pairs (the seed batch's stacked parameters)."""
    groups: dict[tuple[float, bool], list] = {}
    names: dict[tuple[float, bool], list[str]] = {}
    named = model.named_parameters() if isinstance(model, torch.nn.Module) else model
    for name, p in named:
        decay = not any(word in name for word in NO_DECAY_WORDS)
        group_key = (lr_multiplier(name, config), decay)
        groups.setdefault(group_key, []).append(p)
        names.setdefault(group_key, []).append(name)
    t = config.training
    return [
        {
            "params": params,
            "lr": t.learning_rate * mult,
            "weight_decay": t.weight_decay if decay else 0.0,
            "names": names[(mult, decay)],
        }
        for (mult, decay), params in sorted(groups.items())
    ]


def build_optimizer(model: RLAN, config: Config) -> torch.optim.AdamW:
    t = config.training
    return torch.optim.AdamW(parameter_groups(model, config), lr=t.learning_rate, betas=(t.beta1, t.beta2))


def grad_group(name: str) -> str:
    """Module a parameter's gradient norm is reported under: top-level modules, the solver split in parts."""
    parts = name.split(".")
    if parts[0] == "solver" and len(parts) > 2 and parts[1] in ("gru", "solver_context", "output_head"):
        return f"solver.{parts[1]}"
    return parts[0]


# --------------------------------------------------------------------------------------------------
# Precision
# --------------------------------------------------------------------------------------------------
def autocast_dtype(device_cfg: DeviceConfig, device_type: str) -> torch.dtype | None:
    """The autocast dtype the reference used (2.7) on CUDA; None: full float32 (always on CPU)."""
    if device_type != "cuda" or not device_cfg.mixed_precision or device_cfg.dtype == "float32":
        return None
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}[device_cfg.dtype]


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
# The trainer
# --------------------------------------------------------------------------------------------------
GradHook = Callable[[RLAN, int], None]  # called after the backward passes, before the step (tests inject faults)


class Trainer:
    def __init__(
        self,
        config: Config,
        tasks: list[Task],
        *,
        seed: int,
        steps_per_epoch: int,
        device: torch.device | str = "cpu",
        grad_hook: GradHook | None = None,
    ):
        self.config, self.device = config, torch.device(device)
        self.steps_per_epoch = steps_per_epoch
        torch.manual_seed(seed)
        self.model = build_model(config).to(self.device).train()
        self.optimizer = build_optimizer(self.model, config)
        self.ema = EMA.from_config(self.model, config.training)
        self.schedule = Schedule.from_config(config)
        self.stream = SampleStream(tasks, config, seed)
        self.amp_dtype = autocast_dtype(config.device, self.device.type)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype is not None else None
        self.grad_hook = grad_hook
        self.step = 0
        self.first_step = 0  # a warm start's phase 2 numbers its rows and draws its samples after phase 1's
        self.consecutive_nonfinite = 0
        self.skipped_steps = 0
        self._previous_stage: Stage | None = None

    def stage(self) -> Stage:
        return self.schedule.stage_at(self.step / self.steps_per_epoch)

    def events(self, stage: Stage) -> list[dict]:
        """Rows for every module or loss that is live now and was not at the previous step."""
        return stage_events(self.schedule, self._previous_stage, stage, self.first_step + self.step)

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self) -> list[dict]:
        """One optimizer step; returns its event rows (if any) followed by its metrics row."""
        t = self.config.training
        accumulation = t.grad_accumulation_steps
        stage = self.stage()
        rows = self.events(stage)
        self._previous_stage = stage
        self.optimizer.zero_grad(set_to_none=True)
        counts = step_counts(self.config.model.num_classes)
        terms: dict[str, list[float]] = {}
        totals, saturation, delta_norms = [], [], {k: [] for k in LORA_TARGETS}
        nonfinite_loss = 0
        progress = stage.epoch / t.max_epochs
        for micro in range(accumulation):
            batch = self.stream.batch((self.first_step + self.step) * accumulation + micro, t.batch_size).to(
                self.device
            )
            with self._autocast():
                out = self.model(batch.query_input, batch.support_inputs, batch.support_outputs, batch.pair_mask, stage)
                loss = rlan_loss(
                    out,
                    batch.query_target,
                    t,
                    progress=progress,
                    hpm_balance_weight=self.config.model.hpm_balance_weight,
                )
            counts.add(out.logits.detach(), batch.query_target)
            saturation.append(out.gate_saturation.detach().float().mean(dim=0))
            if out.lora_deltas is not None:
                for name, delta in out.lora_deltas.items():
                    delta_norms[name].append(float(delta.detach().float().flatten(1).norm(dim=1).mean()))
            for name, value in loss.as_floats().items():
                terms.setdefault(name, []).append(value)
            total = float(loss.total.detach())
            totals.append(total)
            if not math.isfinite(total):
                nonfinite_loss += 1
                self.optimizer.zero_grad(set_to_none=True)  # the reference's skip also wipes what was accumulated
                continue
            self._backward(loss.total / accumulation)
            with self._autocast():
                if stage.loo:
                    loo = loo_loss(
                        self.model,
                        (batch.support_inputs, batch.support_outputs, batch.pair_mask),
                        stage,
                        weight=t.loo_training.loss_weight,
                        accumulation=accumulation,
                        min_pairs=t.loo_training.min_pairs_for_loo,
                        backward=self._backward,
                    )
                    if loo is not None:
                        terms.setdefault("loo", []).append(loo.value)
                if stage.equivariance:
                    equi = equivariance_loss(
                        self.model,
                        out,
                        stage,
                        weight=t.equivariance_training.loss_weight,
                        num_augmentations=t.equivariance_training.num_augmentations,
                        accumulation=accumulation,
                        backward=self._backward,
                    )
                    if equi is not None:
                        terms.setdefault("equivariance", []).append(equi.value)
        if self.grad_hook is not None:
            self.grad_hook(self.model, self.step)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # norms and clipping see true gradients (reference 2.5)
        grad_norms = self._grad_norms()
        grads_finite = all(math.isfinite(v) for v in grad_norms.values())
        took_step = grads_finite and nonfinite_loss < accumulation
        if took_step:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.gradient_clip)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.model)
        else:
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.update()
        nonfinite_event = nonfinite_loss > 0 or not grads_finite
        self.consecutive_nonfinite = self.consecutive_nonfinite + 1 if nonfinite_event else 0
        self.skipped_steps += 0 if took_step else 1
        row = metrics_row(
            step=self.first_step + self.step,
            stage=stage,
            counts=counts,
            totals=totals,
            terms=terms,
            grad_norms=grad_norms,
            gradient_clip=t.gradient_clip,
            delta_norms=delta_norms if out.lora_deltas is not None else None,
            saturation=torch.stack(saturation).mean(dim=0),
            nonfinite_loss=nonfinite_loss,
            grads_finite=grads_finite,
            params_finite=self._params_finite(),
            took_step=took_step,
            consecutive_nonfinite=self.consecutive_nonfinite,
        )
        self.step += 1
        return rows + [row]

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    @torch.no_grad()
    def _grad_norms(self) -> dict[str, float]:
        """L2 norm of the gradient per module and in total, before clipping (nan when non-finite)."""
        named = [(name, p.grad) for name, p in self.model.named_parameters() if p.grad is not None]
        if not named:
            return {"total": 0.0}
        norms = torch.stack(torch._foreach_norm([g.float() for _, g in named]))  # one pass, one sync below
        return norms_by_group([name for name, _ in named], norms)

    @torch.no_grad()
    def _params_finite(self) -> bool:
        # The max-abs norm is finite exactly when every entry is (it cannot overflow, unlike the L2 norm).
        return bool(torch.isfinite(torch.stack(torch._foreach_norm(list(self.model.parameters()), float("inf")))).all())


def _clean(value):
    """JSON-safe: non-finite floats become the strings 'nan', 'inf', '-inf' (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
