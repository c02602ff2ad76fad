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
from collapse_doctor.model.rlan import RLAN, build_model
from collapse_doctor.train.ema import EMA
from collapse_doctor.train.losses import rlan_loss
from collapse_doctor.train.meta import equivariance_loss, loo_loss
from collapse_doctor.train.step import StepRecord, norms_by_group, stage_events

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


# --------------------------------------------------------------------------------------------------
# Precision
# --------------------------------------------------------------------------------------------------
def autocast_dtype(device_cfg: DeviceConfig, device_type: str) -> torch.dtype | None:
    """The autocast dtype the reference used (2.7) on CUDA; None: full float32 (always on CPU)."""
    if device_type != "cuda" or not device_cfg.mixed_precision or device_cfg.dtype == "float32":
        return None
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}[device_cfg.dtype]


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
        record = StepRecord.start(self.config.model.num_classes)
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
            deltas = {
                name: float(delta.detach().float().flatten(1).norm(dim=1).mean())
                for name, delta in (out.lora_deltas or {}).items()
            }
            saturation = out.gate_saturation.detach().float().mean(dim=0)
            total = float(loss.total.detach())
            if not record.add(out.logits.detach(), batch.query_target, saturation, deltas, loss.as_floats(), total):
                self.optimizer.zero_grad(set_to_none=True)  # the reference's skip also wipes what was accumulated
                continue
            self._backward(loss.total / accumulation)
            with self._autocast():
                self._meta_losses(batch, out, stage, record)
        if self.grad_hook is not None:
            self.grad_hook(self.model, self.step)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # norms and clipping see true gradients (reference 2.5)
        grad_norms = self._grad_norms()
        grads_finite = all(math.isfinite(v) for v in grad_norms.values())
        took_step = record.takes_step(grads_finite, accumulation)
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
        self.consecutive_nonfinite = record.consecutive_nonfinite(self.consecutive_nonfinite, grads_finite)
        self.skipped_steps += 0 if took_step else 1
        row = record.row(
            step=self.first_step + self.step,
            stage=stage,
            grad_norms=grad_norms,
            gradient_clip=t.gradient_clip,
            lora_live=out.lora_deltas is not None,
            grads_finite=grads_finite,
            params_finite=self._params_finite(),
            took_step=took_step,
            consecutive_nonfinite=self.consecutive_nonfinite,
        )
        self.step += 1
        return rows + [row]

    def _meta_losses(self, batch, out, stage: Stage, record: StepRecord) -> None:
        """The LOO and equivariance losses from their start epochs, each with its own backward pass."""
        t = self.config.training
        accumulation = t.grad_accumulation_steps
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
                record.add_term("loo", loo.value)
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
                record.add_term("equivariance", equi.value)

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
