"""`inspect`: what a YAML really builds -- resolved config, unused and defaulted keys, parameters, schedule."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from collapse_doctor import __version__
from collapse_doctor.config import LoadedConfig, UnusedKey, config_to_dict
from collapse_doctor.config.schedule import Schedule
from collapse_doctor.model import build_model


@dataclass(frozen=True)
class ScheduleRow:
    module: str
    start_key: str
    start_epoch: int | None  # None: not built / loss off
    description: str


@dataclass(frozen=True)
class InspectReport:
    source: str
    overrides: tuple[str, ...]
    resolved: dict
    unknown_keys: tuple[str, ...]
    unsupported_keys: tuple[UnusedKey, ...]
    unused_keys: tuple[UnusedKey, ...]  # both of the above, with reasons
    defaulted_keys: tuple[str, ...]
    parameters: dict[str, int]
    context_path: str  # 'spatial', 'vector' or 'none'
    injector: str
    schedule: tuple[ScheduleRow, ...]

    def to_json(self) -> dict:
        return {
            "tool_version": __version__,
            "torch_version": torch.__version__,
            "config": self.source,
            "overrides": list(self.overrides),
            "resolved_config": self.resolved,
            "parameters": self.parameters,
            "unused_keys": [{"key": u.key, "reason": u.reason, "known": u.known} for u in self.unused_keys],
            "defaulted_keys": list(self.defaulted_keys),
            "context_path": self.context_path,
            "context_injector": self.injector,
            "schedule": {row.module: row.start_epoch for row in self.schedule},
            "schedule_detail": [
                {"module": r.module, "key": r.start_key, "start_epoch": r.start_epoch, "description": r.description}
                for r in self.schedule
            ],
        }


def inspect_config(loaded: LoadedConfig) -> InspectReport:
    """Build the model a loaded config asks for (on CPU, seed 0) and describe it."""
    config = loaded.config
    torch.manual_seed(0)
    with torch.device("meta"):  # counts need shapes, not storage: a huge config costs nothing here
        model = build_model(config)
    m = config.model
    context_path = "none" if not m.use_context_encoder else ("spatial" if m.needs_spatial_features else "vector")
    injector = "none" if model.context_injector is None else type(model.context_injector).__name__
    schedule = Schedule.from_config(config)
    rows = [
        ScheduleRow(s.module, s.start_key, s.start_epoch if s.built else None, s.describe()) for s in schedule.modules
    ]
    rows.append(
        ScheduleRow("loo", "training.loo_training.start_epoch", schedule.loo_start, _loss_text(schedule.loo_start))
    )
    rows.append(
        ScheduleRow(
            "equivariance",
            "training.equivariance_training.start_epoch",
            schedule.equivariance_start,
            _loss_text(schedule.equivariance_start),
        )
    )
    return InspectReport(
        source=loaded.source,
        overrides=loaded.overrides,
        resolved=config_to_dict(config),
        unknown_keys=loaded.unknown_keys,
        unsupported_keys=loaded.unsupported_keys,
        unused_keys=loaded.unused_keys,
        defaulted_keys=loaded.defaulted_keys,
        parameters=model.parameter_table(),
        context_path=context_path,
        injector=injector,
        schedule=tuple(rows),
    )


def _loss_text(start: int | None) -> str:
    return "off" if start is None else f"loss from epoch {start}"
