"""Generates docs/config.md from the schema: python -m collapse_doctor.config.docs > docs/config.md."""

from __future__ import annotations

import dataclasses

from collapse_doctor.config.loader import iter_fields, type_name
from collapse_doctor.config.schema import REFERENCE_ONLY_KEYS, SECTIONS

HEADER = """# Configuration

collapse-doctor reads the YAML files users train with: `model:`, `training:`, `data:` and `device:`
sections, keys spelled as in the reference's `configs/rlan_stable.yaml`, plus two sections of its own,
`probe:` (budget, seed, threads) and `verdict:` (thresholds; justified in `docs/verdicts.md`). Each section is one frozen
dataclass in `collapse_doctor/config/` (model.py, training.py, run.py); this page is generated from it
(`python -m collapse_doctor.config.docs > docs/config.md`) and a test keeps it current.

## How a YAML is resolved

- **Defaults.** A key the YAML does not set takes the default below and is listed as *defaulted*.
  The core modules (ContextEncoder, DSC, MSRE) are on unless the YAML turns them off, as in the
  reference. Every optional module (SolverCrossAttention, CrossAttentionInjector, HyperLoRA, HPM, LOO,
  equivariance, gradient checkpointing, LCR, SPH, ACT) is off when the YAML does not mention it, so a
  config written before a module existed builds what it built then (`bisect` reads old configs). For
  `use_solver_context` this differs from the reference's code default (true) on purpose.
- **Staging.** A module that is on and has no start-epoch key is live from step 0, as in the reference
  before its fix (2025-12-28). Start keys and warm-up ramps are read into a `Schedule`; the trainer
  passes the resulting `Stage` into the forward pass.
- **Unused keys** are listed, never dropped: *unknown* keys (not in the schema, e.g. `logging.*`,
  `hardware.*`, `inference.*`), and *unsupported* keys: known keys the tool does not act on, with the
  reason (reference-only keys, and modules or losses it does not build such as `use_lcr: true` or
  `lambda_predicate > 0` without SPH). `--strict` refuses unknown keys instead.
- **Errors.** Wrong types (only int -> float is coerced), out-of-range values and impossible
  combinations stop loading with one line per problem, `FILE: dotted.key: message` (`--set KEY: ...`
  for overrides), all reported at once, exit code 2.
- **Overrides.** `--set model.hidden_dim=64` (repeatable); values are parsed as YAML.

Consumers: `model` changes what RLAN builds or computes; `schedule` changes the staging schedule or
the DSC temperature; `ema` changes the evaluation weights (`collapse_doctor/train/ema.py`); `data`
changes which ARC tasks are used and how samples are augmented (`collapse_doctor/data/arc.py`);
`trainer` changes losses, optimizer or step handling (`collapse_doctor/train/`); `device` changes
precision on CUDA; `probe` changes the probe's budget and run settings; `verdict` changes how a metric
series is judged (`collapse_doctor/judge/verdict.py`). `tests/config/test_key_effects.py` shows each key's effect.
"""


def _bounds(meta) -> str:
    parts = []
    for name, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(name) is not None:
            parts.append(f"{sym} {meta[name]:g}")
    return ", ".join(parts)


def _default(field) -> str:
    if field.default is dataclasses.MISSING:
        return "(section)"
    value = field.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def render() -> str:
    lines = [HEADER]
    for section in SECTIONS:
        lines.append(f"## `{section}:`\n")
        lines.append(
            "| key | type | default | bounds | consumer | reference | what it changes | source of the default |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for dotted, field, tp in iter_fields():
            if not dotted.startswith(section + "."):
                continue
            meta = field.metadata
            consumer = meta["consumer"]
            lines.append(
                f"| `{dotted}` | {type_name(tp)} | {_default(field)} | {_bounds(meta)} | {consumer} | {meta['ref']} "
                f"| {meta['doc']} | {meta['source']} |"
            )
        lines.append("")
    lines.append("## Reference keys the tool knows and does not model\n")
    lines.append("| key | why |")
    lines.append("|---|---|")
    for dotted, why in REFERENCE_ONLY_KEYS.items():
        lines.append(f"| `{dotted}` | {why} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
