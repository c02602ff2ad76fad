"""The staging schedule: which optional module is live at a point of training, and how strongly.

The trainer computes a `Stage` per step and passes it into RLAN.forward (never a flag flipped on a
module). Epochs may be fractional (a probe's epoch is a configured number of optimizer steps), so
warm-up ramps are linear per step. Reference sections 2.4, 3.3 and 3.4.
"""

from __future__ import annotations

from dataclasses import dataclass

from collapse_doctor.config import Config


@dataclass(frozen=True)
class Stage:
    """What is live at one point of training. A module's value is None while it is inactive, else its scale."""

    epoch: float = 0.0
    temperature: float = 1.0
    hyper_lora: float | None = 1.0  # delta scale
    solver_context: float | None = 1.0  # contribution 0..1
    cross_attention: float | None = 1.0  # contribution 0..1
    hpm: float | None = 1.0  # contribution 0..1
    loo: bool = False
    equivariance: bool = False


FULL_STAGE = Stage()  # every built module live at full strength: what an unstaged model does

ACTIVATION_AT = 0.4  # a probe's last staged activation falls at this fraction of its steps


@dataclass(frozen=True)
class ModuleSchedule:
    """When one optional module starts and how it ramps in."""

    module: str  # name of the RLAN attribute
    start_key: str  # the dotted config key that stages it
    built: bool
    start_epoch: int  # 0 when the config has no start key: live from step 0
    warmup_epochs: float = 0.0
    ramp_from: float = 0.0
    ramp_to: float = 1.0

    def scale_at(self, epoch: float) -> float | None:
        if not self.built or epoch < self.start_epoch:
            return None
        if self.warmup_epochs <= 0:
            return 1.0
        progress = min(1.0, (epoch - self.start_epoch) / self.warmup_epochs)
        return self.ramp_from + (self.ramp_to - self.ramp_from) * progress

    def describe(self) -> str:
        if not self.built:
            return "not built"
        text = f"live from epoch {self.start_epoch}"
        if self.warmup_epochs > 0:
            text += f", ramp {self.ramp_from:g} -> {self.ramp_to:g} over {self.warmup_epochs:g} epochs"
        else:
            text += ", abrupt"
        return text


@dataclass(frozen=True)
class Schedule:
    modules: tuple[ModuleSchedule, ...]
    loo_start: int | None  # None: the loss is off
    equivariance_start: int | None
    temperature_start: float
    temperature_end: float
    max_epochs: int

    @classmethod
    def from_config(cls, config: Config) -> "Schedule":
        m, t = config.model, config.training
        modules = (
            ModuleSchedule(
                "hyper_lora",
                "model.hyperlora_start_epoch",
                m.use_hyperlora,
                m.hyperlora_start_epoch or 0,
                t.hyperlora_warmup_epochs,
                t.hyperlora_warmup_start_scale,
                t.hyperlora_warmup_end_scale,
            ),
            ModuleSchedule(
                "solver_context",
                "training.solver_context_start_epoch",
                m.use_solver_context,
                t.solver_context_start_epoch or 0,
                t.solver_context_warmup_epochs,
            ),
            ModuleSchedule(
                "cross_attention",
                "training.cross_attention_start_epoch",
                m.use_cross_attention_context,
                t.cross_attention_start_epoch or 0,
                t.cross_attention_warmup_epochs,
            ),
            ModuleSchedule("hpm", "model.hpm_start_epoch", m.use_hpm, m.hpm_start_epoch or 0, m.hpm_warmup_epochs),
        )

        def loss_start(section) -> int | None:
            if not section.enabled:
                return None
            return section.start_epoch if section.start_epoch is not None else t.meta_learning_start_epoch

        return cls(
            modules,
            loss_start(t.loo_training),
            loss_start(t.equivariance_training),
            t.temperature_start,
            t.temperature_end,
            t.max_epochs,
        )

    def temperature_at(self, epoch: float) -> float:
        """DSC temperature: geometric from temperature_start to temperature_end over max_epochs (reference 1.7)."""
        return self.temperature_start * (self.temperature_end / self.temperature_start) ** (epoch / self.max_epochs)

    def stage_at(self, epoch: float) -> Stage:
        scales = {s.module: s.scale_at(epoch) for s in self.modules}
        return Stage(
            epoch=epoch,
            temperature=self.temperature_at(epoch),
            loo=self.loo_start is not None and epoch >= self.loo_start,
            equivariance=self.equivariance_start is not None and epoch >= self.equivariance_start,
            **scales,
        )

    def events(self) -> list[tuple[int, str]]:
        """(epoch, what starts) for every activation after epoch 0, in order."""
        out = [(s.start_epoch, f"{s.module} on") for s in self.modules if s.built and s.start_epoch > 0]
        if self.loo_start is not None:
            out.append((self.loo_start, "loo loss on"))
        if self.equivariance_start is not None:
            out.append((self.equivariance_start, "equivariance loss on"))
        return sorted(out)

    def as_dict(self) -> dict[str, int | None]:
        """Module or loss -> start epoch; None when it is off."""
        out: dict[str, int | None] = {s.module: (s.start_epoch if s.built else None) for s in self.modules}
        out["loo"] = self.loo_start
        out["equivariance"] = self.equivariance_start
        return out


def steps_per_epoch(config: Config) -> int:
    """A probe's epoch in optimizer steps: probe.steps_per_epoch, or the value that puts the last staged
    activation at 40% of the probe's steps (so every module the config stages goes live in the probe)."""
    if config.probe.steps_per_epoch is not None:
        return config.probe.steps_per_epoch
    last = max((epoch for epoch, _ in Schedule.from_config(config).events()), default=0)
    if last == 0:
        return config.probe.steps  # nothing is staged: the probe is one epoch
    return max(1, int(ACTIVATION_AT * config.probe.steps / last))
