"""Number formatting, the colours of verdicts, and styled lines, shared by the renderers.

The consoles never parse markup (cli/app.py: markup=False), so text a user controls (commit subjects,
keys, paths, task names, command output) is printed as it is; styling is given as (text, style) pairs."""

from __future__ import annotations

from rich.text import Text


def styled(*parts) -> Text:
    """One line from plain strings, Text, and (text, style) pairs."""
    return Text.assemble(*parts)


VERDICT_STYLE = {
    "HEALTHY": "green",
    "TRANSIENT": "yellow",
    "INCONCLUSIVE": "yellow",
    "COLLAPSED": "red",
    "FG_COLLAPSE": "red",
    "DIVERGED": "red",
}
VERDICT_CODE = {
    "HEALTHY": "H",
    "TRANSIENT": "T",
    "COLLAPSED": "C",
    "FG_COLLAPSE": "F",
    "DIVERGED": "D",
    "INCONCLUSIVE": "I",
}
DECISION_STYLE = {"good": "green", "bad": "red", "skip": "yellow"}


def pct_text(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def pair_text(a, b) -> str:
    return "-" if a is None or b is None else f"{a:.0%}/{b:.0%}"


def change_text(relative_drop: float) -> str:
    return f"{relative_drop:.0%} drop" if relative_drop >= 0 else f"{-relative_drop:.0%} rise"


def number_text(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "n/a"
    return f"{value:.{digits}e}" if value and (abs(value) < 1e-2 or abs(value) >= 1e3) else f"{value:.{digits}f}"


def short_error(text: str) -> str:
    """torch's messages run long: the first clause names the failure."""
    cut = min((i for i in (text.find(" ("), text.find(". ")) if i > 0), default=len(text))
    return text[:cut]


def median_of(values: list) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
