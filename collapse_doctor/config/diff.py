"""Key-by-key differences between two YAML configs: the side-by-side table the seed investigation
wrote by hand, grouped by section, marking module toggles, init values and start epochs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collapse_doctor.config import REFERENCE_ONLY_KEYS, iter_fields, load_yaml
from collapse_doctor.errors import ConfigError

ABSENT = "(absent)"
INIT_KEYS = {"model.bg_bias", "model.fg_bias", "model.hyperlora_init_scale", "model.hyperlora_scaling"}
SCHEMA_KEYS = {dotted for dotted, _, _ in iter_fields()}


@dataclass(frozen=True)
class KeyChange:
    key: str
    section: str
    old: Any
    new: Any
    kind: str  # "module toggle", "init value", "staging", "" (other)
    known: bool  # a key the tool models (or knowingly lists)

    def to_json(self) -> dict:
        return vars(self)


def flatten(raw: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {prefix: raw} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        dotted = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, dotted))
        else:
            out[dotted] = v
    return out


def kind_of(dotted: str) -> str:
    name = dotted.rsplit(".", 1)[-1]
    if name.startswith("use_") or name == "enabled" or dotted == "training.gradient_checkpointing":
        return "module toggle"
    if dotted in INIT_KEYS:
        return "init value"
    if name.endswith(("start_epoch", "warmup_epochs", "warmup_start_scale", "warmup_end_scale")):
        return "staging"
    return ""


def parse_raw(text: str, source: str) -> dict:
    try:
        raw = load_yaml(text)
    except Exception as exc:  # yaml.YAMLError and friends: the message names the file
        raise ConfigError(f"{source}: malformed YAML ({exc.__class__.__name__})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with model:/training:/data:/device: sections")
    return raw


def diff_raw(a: dict, b: dict) -> list[KeyChange]:
    fa, fb = flatten(a), flatten(b)
    changes = []
    for key in sorted(set(fa) | set(fb), key=lambda k: (k.split(".")[0], k)):
        old, new = fa.get(key, ABSENT), fb.get(key, ABSENT)
        if old != new:
            changes.append(
                KeyChange(
                    key, key.split(".")[0], old, new, kind_of(key), key in SCHEMA_KEYS or key in REFERENCE_ONLY_KEYS
                )
            )
    return changes
