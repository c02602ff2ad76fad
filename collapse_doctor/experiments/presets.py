"""Probe presets: shrink width, canvas, batch and budget, keep every module toggle and the staging order.

Shrinking must not quietly remove the effect under test. HyperLoRA's delta at init grows about as
D^1.5 * init_scale^2 (reference 1.10: gain ~13.5 at D 256, init_scale 0.1, rank 8; ~1.6 at D 64 with
the same init), so a preset rescales init_scale by (D_config / D_preset)^0.75 to keep the gain of the
config's own size. Every change is returned with its reason and printed in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collapse_doctor.config import Config, LoadedConfig, cross_field_problems, replace_key, replace_keys
from collapse_doctor.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    name: str
    hidden_dim: int | None  # None: keep the config's
    canvas: int | None
    batch_size: int | None
    grad_accumulation_steps: int | None
    steps: int
    summary: str


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "tiny",
        32,
        10,
        8,
        1,
        120,
        "D 32, 10x10 canvas (178 ARC-1 training tasks fit), batch 8, 120 steps: the CPU default",
    ),
    "small": Preset(
        "small",
        64,
        16,
        8,
        2,
        200,
        "D 64, 16x16 canvas (284 tasks fit), batch 8 x 2, 200 steps: a GPU, or a long CPU run",
    ),
    "full": Preset("full", None, None, None, None, 600, "the config's own size and batch, 600 steps: GPU work"),
}


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any
    why: str


def apply_preset(loaded: LoadedConfig, preset: Preset) -> tuple[Config, list[Change]]:
    """The config a probe runs and the list of changes the preset made. Keys the user set with --set
    (or --steps / --seed) win over the preset; probe.* keys written in the YAML win too."""
    config = loaded.config
    user_keys = {o.partition("=")[0].strip() for o in loaded.overrides}
    yaml_probe_keys = {k for k in ("probe.steps", "probe.steps_per_epoch") if k not in loaded.defaulted_keys}
    wanted: dict[str, Any] = {}  # the preset's new values, applied in one copy of the config
    changes: list[Change] = []

    def change(dotted: str, value: Any, why: str) -> None:
        if dotted in user_keys or dotted in yaml_probe_keys:
            return
        section, _, name = dotted.partition(".")  # a preset changes section.key pairs only
        old = getattr(getattr(config, section), name)
        if old != value:
            wanted[dotted] = value
            changes.append(Change(dotted, old, value, why))

    m = config.model
    if preset.hidden_dim is not None and preset.hidden_dim < m.hidden_dim:
        change("model.hidden_dim", preset.hidden_dim, f"{preset.name} preset width")
        if m.use_hyperlora and m.hyperlora_init_scale > 0:
            factor = (m.hidden_dim / wanted.get("model.hidden_dim", m.hidden_dim)) ** 0.75
            change(
                "model.hyperlora_init_scale",
                round(m.hyperlora_init_scale * factor, 6),
                f"keeps HyperLoRA's init gain (~ D^1.5 * init_scale^2) of D {m.hidden_dim}: x{factor:.2f}",
            )
    if preset.canvas is not None and preset.canvas < m.max_grid_size:
        change(
            "model.max_grid_size", preset.canvas, f"{preset.name} preset canvas; only tasks whose grids fit are used"
        )
        if config.data.max_grid_size is not None and config.data.max_grid_size > preset.canvas:
            change("data.max_grid_size", preset.canvas, "follows the canvas")
        if m.spatial_downsample > preset.canvas:
            change("model.spatial_downsample", preset.canvas, "cannot exceed the canvas")
    if preset.batch_size is not None and preset.batch_size < config.training.batch_size:
        change("training.batch_size", preset.batch_size, f"{preset.name} preset batch")
    if (
        preset.grad_accumulation_steps is not None
        and preset.grad_accumulation_steps < config.training.grad_accumulation_steps
    ):
        change("training.grad_accumulation_steps", preset.grad_accumulation_steps, f"{preset.name} preset accumulation")
    change("probe.steps", preset.steps, f"{preset.name} preset budget")
    config = replace_keys(config, wanted)
    lr_change = scaled_learning_rate(config, loaded.declared_batch)
    if lr_change is not None:
        config = replace_key(config, "training.learning_rate", lr_change.new)
        changes.append(lr_change)
    problems = cross_field_problems(config)
    if problems:
        raise ConfigError([f"{loaded.source}: {k}: {msg} (after the {preset.name} preset)" for k, msg in problems])
    return config, changes


def scaled_learning_rate(config: Config, declared_batch: int | None) -> Change | None:
    """probe.lr_batch_exponent's rule: LR x (effective batch / reference batch) ** exponent. Applied after
    the preset and every override, so it always sees the batch the probe really trains."""
    exponent = config.probe.lr_batch_exponent
    if exponent is None:
        return None
    reference = config.probe.lr_reference_batch or declared_batch
    if reference is None:
        raise ConfigError("probe.lr_batch_exponent: the config states no usable batch; set probe.lr_reference_batch")
    t = config.training
    effective = t.batch_size * t.grad_accumulation_steps
    factor = (effective / reference) ** exponent
    if factor == 1.0:
        return None
    new = float(f"{t.learning_rate * factor:.6g}")
    return Change(
        "training.learning_rate",
        t.learning_rate,
        new,
        f"probe.lr_batch_exponent {exponent}: x ({effective} / {reference}) ** {exponent} = x{factor:.4f}",
    )
