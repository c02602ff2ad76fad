"""Probe regimes: the settings (batch, accumulation, steps, learning-rate rule, warm start) under which
a probe trains, as config overrides, and the regime files that carry them.

A regime is chosen on the known-good config alone (it must learn there: HEALTHY or TRANSIENT on at
least 4 of 5 seeds), never by how well it separates good from bad; `calibrate` then measures the
separation once. Every regime setting is a config key, so a regime file is a YAML mapping of
`probe:` / `training:` keys.

Which source wins for a key, lowest first: the config YAML, the preset (it shrinks width, canvas,
batch and steps), the regime file, --set (and --seed/--steps/--warm-start). The learning-rate rule
(probe.lr_batch_exponent) is applied last, to the batch the probe really trains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from collapse_doctor.config import load_yaml, parse_config
from collapse_doctor.errors import ConfigError

REGIME_SECTIONS = ("probe", "training")
COMPARED = ("probe.early_stop_after=null",)  # measures are compared over a fixed window: no early stop


@dataclass(frozen=True)
class Regime:
    name: str
    overrides: tuple[str, ...]
    summary: str


def _regime(name: str, batch: int, steps: int, exponent: float | None, summary: str, warm: str | None = None) -> Regime:
    overrides = [
        f"training.batch_size={batch}",
        "training.grad_accumulation_steps=1",
        f"probe.steps={steps}",
        *COMPARED,
    ]
    overrides.append(f"probe.lr_batch_exponent={'null' if exponent is None else exponent}")
    if warm is not None:
        overrides += [f"probe.warm_start_steps={warm}", "probe.warm_start_until_learned=true"]
    return Regime(name, tuple(overrides), summary)


# The default grid of `calibrate`, cheapest first (seconds per OLD probe on one thread of the 2-core
# CPU in docs/validity.md). Batch 8 is the tiny preset's; 32 is the largest that stays affordable
# there. The LR exponents are McCandlish et al.'s range for Adam (0.5 to 1); none keeps the config's.
GRID: tuple[Regime, ...] = (
    _regime("b8", 8, 300, None, "tiny preset batch 8, the config's LR, 300 steps"),
    _regime("b8-lr-sqrt", 8, 300, 0.5, "batch 8, LR x (8 / config batch)^0.5, 300 steps"),
    _regime("b8-lr-linear", 8, 300, 1.0, "batch 8, LR x (8 / config batch), 300 steps"),
    _regime("b32", 32, 300, None, "batch 32, the config's LR, 300 steps"),
    _regime("b32-lr-sqrt", 32, 300, 0.5, "batch 32, LR x (32 / config batch)^0.5, 300 steps"),
)
WARM_STEPS = 600  # the most phase-1 steps of an 'auto' warm start: OLD at batch 8 reached the learned level by step 300 on 1 of 4 seeds (docs/validity.md)
# The longest recovered collapse measured (steps from onset to learning again): the OLD config at batch 8,
# 20 seeds, 300 steps each (docs/validity.md). A probe whose budget is shorter cannot tell a config that
# recovers late from one that never does, and says so.
LONGEST_RECOVERY = 220


def warm_variant(regime: Regime, phase2_steps: int = 100) -> Regime:
    """The regime as a warm-start probe: phase 1 until learned (at most WARM_STEPS), then phase2_steps."""
    overrides = [o for o in regime.overrides if not o.startswith("probe.steps=")]
    overrides += [
        f"probe.steps={phase2_steps}",
        f"probe.warm_start_steps={WARM_STEPS}",
        "probe.warm_start_until_learned=true",
    ]
    return Regime(
        f"warm-{regime.name}",
        tuple(overrides),
        f"{regime.summary}; warm start: phase 1 until learned (at most {WARM_STEPS}), phase 2 {phase2_steps} steps",
    )


def sharp_variant(regime: Regime, phase2_steps: int) -> Regime:
    """A warm start with a short phase 2: the activation shock. A learned OLD model switched to NEW
    collapsed within 1-2 steps on 3 of 3 seeds (docs/validity.md section 6), so a short phase 2 sees the
    collapse. Staged epochs scale with the probe's length, so epoch 3 falls at phase-2 step 3 of 10: the
    meta losses and staged modules do run, but a stage has only the last steps to show its effect."""
    warm = warm_variant(regime, phase2_steps)
    summary = (
        f"batch 8, the config's LR; warm start: phase 1 trains the good config until learned (at most "
        f"{WARM_STEPS} steps), phase 2 {phase2_steps} steps of the candidate"
    )
    return Regime(f"warm-{regime.name}-p{phase2_steps}", warm.overrides, summary)


SHARP_STEPS = (10, 20, 40)  # phase-2 lengths tried, shortest (cheapest) first
SHARP: tuple[Regime, ...] = tuple(sharp_variant(GRID[0], n) for n in SHARP_STEPS)
# What the headline commands calibrate over when no regime is named: the sharp regimes (phase 1 shared by
# all of them, cached), then the cold grid. Cheapest first; calibrate stops at the first that separates.
DEFAULT_GRID: tuple[Regime, ...] = (*SHARP, *GRID)


def is_warm(regime: Regime) -> bool:
    return any(o.startswith("probe.warm_start_steps=") and not o.endswith("=null") for o in regime.overrides)


# The preset's own quick settings (120 steps, early stop): what a probe runs when no regime is named.
QUICK = Regime("quick", (), "the preset's quick default: no regime overrides")


def by_name(name: str) -> Regime:
    if name == QUICK.name:
        return QUICK
    for regime in GRID:
        if regime.name == name:
            return regime
        if f"warm-{regime.name}" == name:
            return warm_variant(regime)
    for regime in SHARP:
        if regime.name == name:
            return regime
    names = ", ".join(
        [QUICK.name] + [r.name for r in GRID] + [f"warm-{r.name}" for r in GRID] + [r.name for r in SHARP]
    )
    raise ConfigError(f"regime {name!r}: expected one of {names}")


def _flatten(data: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flatten(value, dotted + ".")
        else:
            out.append((dotted, value))
    return out


def read_regime(path: str | Path) -> tuple[str, ...]:
    """A regime file as --set-style overrides (KEY=VALUE, values as JSON, which YAML reads back)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the regime file: {exc.strerror or exc}") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not data:
        raise ConfigError(
            f"{path}: the regime file is empty: it would probe with no change at all; give its probe: or training: "
            "keys, or leave out --regime"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a regime file is a mapping of {' / '.join(REGIME_SECTIONS)} sections")
    bad = [k for k in data if k not in REGIME_SECTIONS]
    if bad:
        raise ConfigError(f"{path}: {bad[0]}: a regime file holds only {' and '.join(REGIME_SECTIONS)} sections")
    parse_config(data, source=str(path), strict=True)  # a wrong key or value is named with this file, not as a --set
    return tuple(f"{k}={json.dumps(v)}" for k, v in _flatten(data))


def regime_yaml(overrides: tuple[str, ...], comments: list[str]) -> str:
    """A regime file: the overrides as nested YAML, the measurements as comments above them."""
    tree: dict = {}
    for override in overrides:  # later ones win, as with --set
        dotted, _, value = override.partition("=")
        dotted = dotted.strip()
        node = tree
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    head = "".join(f"# {line}\n" for line in comments)
    return head + yaml.safe_dump(tree, sort_keys=True)
