"""Every per-step signal, named once: what it means, its range, and what the verdict makes of it.

A metric row (the probe's, the monitor's, a scanned log's) is a mapping from these names to values. The
verdict's inputs, scan's columns, the monitor's TensorBoard tags, the Lightning callback's logged values,
a sweep's stored series and the signal table in docs/signals.md all derive from SIGNALS here; a test
checks that a probe's rows carry every signal the probe is said to write.

`verdict`: "required" (no verdict without it), "used" (the verdict rests on it when present and says what
its absence limits: a verdict's `signals_used`), "support" (read when present, to weight or refine another
signal), or "" (reported, never read by the verdict).
"""

from __future__ import annotations

from dataclasses import dataclass

REQUIRED, USED, SUPPORT = "required", "used", "support"


@dataclass(frozen=True)
class Signal:
    name: str
    meaning: str
    range: str  # as docs/signals.md prints it
    verdict: str = ""  # REQUIRED, USED, SUPPORT or ""
    column: bool = False  # one of scan's canonical columns of any user's log (--map renames them)
    monitor: bool = False  # the monitor writes it (TensorBoard tag collapse/NAME)
    lightning: bool = False  # the Lightning callback logs it
    series: bool = False  # kept per step in a sweep's probe summaries (the reports' plots)
    fraction: bool = False  # a share in [0, 1] (scan converts percentages with --percent)


SIGNALS: tuple[Signal, ...] = (
    Signal(
        "step",
        "the optimizer step the row measured (before that step's update)",
        ">= 0 (integer)",
        REQUIRED,
        column=True,
        series=True,
    ),
    Signal(
        "fg_acc",
        "share of foreground (non-background) target cells predicted right",
        "[0, 1]",
        REQUIRED,
        column=True,
        monitor=True,
        lightning=True,
        series=True,
        fraction=True,
    ),
    Signal(
        "bg_acc",
        "share of background target cells predicted right",
        "[0, 1]",
        REQUIRED,
        column=True,
        monitor=True,
        lightning=True,
        series=True,
        fraction=True,
    ),
    Signal(
        "pred_bg_share",
        "share of valid cells predicted as background",
        "[0, 1]",
        USED,
        column=True,
        monitor=True,
        lightning=True,
        series=True,
        fraction=True,
    ),
    Signal(
        "target_bg_share",
        "share of valid cells whose target is background",
        "[0, 1]",
        USED,
        column=True,
        monitor=True,
        lightning=True,
        series=True,
        fraction=True,
    ),
    Signal(
        "loss",
        "the training loss of the step (non-finite values count toward DIVERGED)",
        "any float",
        USED,
        column=True,
        monitor=True,
    ),
    Signal(
        "valid_cells",
        "target cells that count (not padding, not ignored): the pooling weight",
        ">= 0 (integer)",
        SUPPORT,
        monitor=True,
        series=True,
    ),
    Signal("fg_pred_mode", "the colour predicted most often on foreground cells", "0-9 or null", USED),
    Signal("fg_pred_mode_share", "share of foreground cells given that colour", "[0, 1] or null", USED, fraction=True),
    Signal(
        "fg_pred_mode_target_share",
        "share of foreground targets that are that colour",
        "[0, 1] or null",
        SUPPORT,
        fraction=True,
    ),
    Signal("fg_pred_share", "per colour, share of foreground cells predicted as it", "list of [0, 1]", SUPPORT),
    Signal("target_share", "per colour, share of valid cells whose target is it", "list of [0, 1]", SUPPORT),
    Signal("pred_share", "per colour, share of valid cells predicted as it", "list of [0, 1]"),
    Signal(
        "consecutive_nonfinite",
        "non-finite steps in a row up to this one (the step was skipped)",
        ">= 0 (integer)",
        USED,
    ),
    Signal("params_finite", "every parameter finite after the step", "true / false"),
)
BY_NAME = {s.name: s for s in SIGNALS}


def names(**flags: bool) -> tuple[str, ...]:
    """The names of the signals whose flags all match, in SIGNALS order: names(column=True)."""
    return tuple(s.name for s in SIGNALS if all(getattr(s, flag) == value for flag, value in flags.items()))


VERDICT_SIGNALS = tuple(s.name for s in SIGNALS if s.verdict in (REQUIRED, USED) and s.name != "step")
VERDICT_REQUIRED = tuple(s.name for s in SIGNALS if s.verdict == REQUIRED and s.name != "step")
VERDICT_SUPPORT = names(verdict=SUPPORT)
COLUMNS = names(column=True)  # scan's canonical columns
FRACTION_COLUMNS = names(column=True, fraction=True)
FINAL = FRACTION_COLUMNS  # the final window's means that every verdict reports
MONITOR_TAGS = names(monitor=True)
LIGHTNING_LOGGED = names(lightning=True)
SERIES = names(series=True)


def signal_doc() -> str:
    """docs/signals.md: python -m collapse_doctor.judge.signals > docs/signals.md (a docs test keeps it so)."""
    lines = [
        "# Signals",
        "",
        "Every per-step signal a metric row may carry, generated from `collapse_doctor/judge/signals.py`.",
        "A probe writes all of them; a user's log (scan) needs `step`, `fg_acc` and `bg_acc`, and the verdict",
        "says which others it rested on (`signals_used`) and what their absence limits. verdict: *required*",
        "(no verdict without it), *used* (rested on when present), *support* (weights or refines another",
        "signal), blank (reported only).",
        "",
        "| signal | meaning | range | verdict | scan column | monitor tag | series |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in SIGNALS:
        yes = {True: "yes", False: ""}
        lines.append(
            f"| `{s.name}` | {s.meaning} | {s.range} | {s.verdict} | {yes[s.column]} | "
            f"{'collapse/' + s.name if s.monitor else ''} | {yes[s.series]} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(signal_doc(), end="")
