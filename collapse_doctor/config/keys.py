"""`key()`: a config field with its bounds and its documentation (what reads it, the reference section,
whose default it is), from which docs/config.md is generated."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, Callable, Literal

# Who reads a key (documentation, and the effect a test checks for it).
Consumer = Literal["model", "schedule", "ema", "trainer", "data", "device", "probe", "verdict"]


def key(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    ref: str,
    source: str,
    consumer: Consumer = "model",
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    unsupported_if: Callable[[Any], bool] | None = None,
    unsupported_why: str = "",
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A config field with its documentation and bounds."""
    metadata = dict(
        doc=doc,
        ref=ref,
        source=source,
        consumer=consumer,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        unsupported_if=unsupported_if,
        unsupported_why=unsupported_why,
    )
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


DATACLASS_FRAME = dict(kw_only=True, frozen=True, slots=True)
