"""The verdict: pure functions from a per-step metric series to HEALTHY, COLLAPSED, TRANSIENT,
FG_COLLAPSE, DIVERGED or INCONCLUSIVE, with the onset step and the evidence. No torch here: probe,
gate, bisect, ablate and scan all judge their series with this one module.

A series is a list of dict rows as the probe writes them (JSONL): metric rows carry `step` and the
signals, event rows carry `step` and `event`. Any signal may be missing (a scanned log has what it
has); `signals_used` says which ones a verdict rests on. Thresholds come from `VerdictConfig`;
docs/verdicts.md justifies each from reference sections 2.5, 2.10 and 7.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

from collapse_doctor.config import VerdictConfig
from collapse_doctor.errors import ExitCode
from collapse_doctor.judge.flags import (
    SignalPool,
    background_flag,
    background_holds,
    background_onset,
    foreground_flag,
    poolable,
    signal_value,
)
from collapse_doctor.judge.signals import FINAL, VERDICT_SIGNALS

HEALTHY, COLLAPSED, TRANSIENT, FG_COLLAPSE, DIVERGED, INCONCLUSIVE = (
    "HEALTHY",
    "COLLAPSED",
    "TRANSIENT",
    "FG_COLLAPSE",
    "DIVERGED",
    "INCONCLUSIVE",
)
GOOD_VERDICTS = frozenset({HEALTHY, TRANSIENT})
BAD_VERDICTS = frozenset({COLLAPSED, FG_COLLAPSE, DIVERGED})
VERDICTS = (HEALTHY, TRANSIENT, COLLAPSED, FG_COLLAPSE, DIVERGED, INCONCLUSIVE)


def is_good(label: str) -> bool | None:
    """For pass/fail uses (gate, bisect): True good, False bad, None undecided (INCONCLUSIVE)."""
    if label in GOOD_VERDICTS:
        return True
    if label in BAD_VERDICTS:
        return False
    return None


def exit_code(label: str) -> ExitCode:
    good = is_good(label)
    return ExitCode.GOOD if good else ExitCode.BAD if good is False else ExitCode.INCONCLUSIVE


@dataclass(frozen=True)
class Episode:
    kind: str  # "bg" (background over-predicted, FG accuracy near zero) or "fg" (foreground collapse)
    start: int  # first flagged step
    end: int  # last flagged step
    length: int  # flagged metric rows
    at_end: bool  # still flagged at the last row


@dataclass(frozen=True)
class Activation:
    event: str
    step: int
    fg_acc_before: float | None  # mean over window_before steps before the event
    fg_acc_after: float | None  # mean over window_after steps from the event
    relative_fg_drop: float | None  # (before - after) / before
    onset_offset: int | None = None  # onset step minus this event's step (negative: the onset came first)


@dataclass
class Verdict:
    label: str
    onset_step: int | None
    reasons: list[str]
    steps: int  # metric rows judged
    final: dict[str, float | None]  # final-window means of fg_acc, bg_acc, pred_bg_share, target_bg_share
    episodes: list[Episode] = field(default_factory=list)
    activations: list[Activation] = field(default_factory=list)
    onset_after: dict | None = None  # {"event", "step", "steps_after"}: the last activation at or before the onset
    signals_used: list[str] = field(default_factory=list)
    limitations: list[str] = field(default_factory=list)

    @property
    def good(self) -> bool | None:
        return is_good(self.label)

    @property
    def exit_code(self) -> ExitCode:
        return exit_code(self.label)

    def to_json(self) -> dict:
        data = asdict(self)
        data["good"] = self.good
        return data


class _Episodes:
    """Episodes with hysteresis, one row at a time: one starts after min_consecutive `enter` rows in a
    row, and ends after min_consecutive rows in a row where it no longer `hold`s. Rows that cannot tell
    (None) are skipped. Pooling detects an episode a few steps late, so its onset moves back over the
    unbroken run of raw steps, ending just before the detected start, in which its condition already
    held (`before`: that run's first step and length, given with each row)."""

    def __init__(self, kind: str, min_consecutive: int):
        self.kind, self.min_consecutive = kind, min_consecutive
        self.closed: list[Episode] = []
        self.run, self.run_start = 0, None  # consecutive entering rows while outside an episode
        self.open: dict | None = None

    def add(self, step: int, enter: bool | None, hold: bool | None, before: tuple[int | None, int]) -> None:
        if enter is None or hold is None:
            return
        if self.open is None:
            if not enter:
                self.run = 0
                return
            if self.run == 0:
                self.run_start = (step, before)
            self.run += 1
            if self.run >= self.min_consecutive:
                self.open = {"start": self.run_start, "last": step, "length": self.run, "exits": 0}
                self.run = 0
        elif hold or enter:
            self.open.update(last=step, exits=0, length=self.open["length"] + 1)
        else:
            self.open["exits"] += 1
            if self.open["exits"] >= self.min_consecutive:
                self.closed.append(self._episode(self.open, at_end=False))
                self.open = None

    def _episode(self, state: dict, at_end: bool) -> Episode:
        start, (first, extra) = state["start"]
        return Episode(self.kind, start if first is None else first, state["last"], state["length"] + extra, at_end)

    def episodes(self) -> list[Episode]:
        return self.closed + ([self._episode(self.open, at_end=True)] if self.open is not None else [])


class _Run:
    """The unbroken run of rows, up to the latest, in which a condition held: (first step, length)."""

    def __init__(self):
        self.first, self.length = None, 0

    def add(self, step: int, holds) -> None:
        self.first, self.length = (self.first if self.length else step, self.length + 1) if holds else (None, 0)

    @property
    def state(self) -> tuple[int | None, int]:
        return self.first, self.length


class _Mean:
    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            self.total, self.count = self.total + value, self.count + 1

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


# --------------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------------
SIGNALS = VERDICT_SIGNALS  # judge/signals.py: what a verdict may rest on
FINAL_SIGNALS = FINAL


class SeriesJudge:
    """The verdict of a series fed one row at a time, in step order. Memory is bounded by the windows
    (the pool, the final window, the activation windows), not by the length of the run, so scan reads
    a log of any size in flat memory.
    `judge(series)` is this, fed the whole series."""

    def __init__(self, cfg: VerdictConfig | None = None):
        self.cfg = cfg = cfg or VerdictConfig()
        self.rows, self.first_step, self.last_step = 0, None, None
        self.signals: set[str] = set()
        self.final: deque = deque(maxlen=cfg.final_window)
        self.pool = SignalPool(cfg.pool_fg_cells) if cfg.pool_fg_cells > 0 else None  # None once a row cannot be pooled
        self.tracks = {
            pooled: (_Episodes("bg", cfg.min_consecutive), _Episodes("fg", cfg.min_consecutive))
            for pooled in (True, False)
        }
        self.onset_runs = {"bg": _Run(), "fg": _Run()}  # raw rows where an episode's onset may lie
        self.nonfinite, self.nonfinite_longest = _Run(), (None, 0)
        self.params_bad = False
        self.recent: deque = deque()  # (step, fg_acc) within the activation windows of the latest step
        self.activations: list[dict] = []

    def add(self, row: dict) -> None:
        """One row of the series: an event row (`event`) or a metric row (`step` and signals)."""
        if row.get("event"):
            self._add_event(row)
        elif "step" in row:
            self._add_metrics(row)

    def _add_event(self, row: dict) -> None:
        step, before, after = row["step"], _Mean(), _Mean()
        activation = {"event": row["event"], "step": step, "before": before, "after": after}
        for seen, fg in self.recent:
            self._count(activation, seen, fg)
        self.activations.append(activation)

    def _count(self, activation: dict, step: int, fg: float | None) -> None:
        if activation["step"] - self.cfg.window_before <= step < activation["step"]:
            activation["before"].add(fg)
        elif activation["step"] <= step < activation["step"] + self.cfg.window_after:
            activation["after"].add(fg)

    def _add_metrics(self, row: dict) -> None:
        cfg, step = self.cfg, row["step"]
        if self.last_step is not None and step <= self.last_step:
            raise ValueError(
                f"step {step} does not follow step {self.last_step}: a series is judged in step order, each step once"
            )
        self.rows += 1
        self.first_step = step if self.first_step is None else self.first_step
        self.last_step = step
        self.signals.update(s for s in SIGNALS if row.get(s) is not None)
        self.final.append(tuple(signal_value(row, name) for name in FINAL_SIGNALS))
        fg = signal_value(row, "fg_acc")
        for activation in self.activations:
            self._count(activation, step, fg)
        self.recent.append((step, fg))
        while self.recent[0][0] < step - cfg.window_before - cfg.window_after:
            self.recent.popleft()

        before = {kind: run.state for kind, run in self.onset_runs.items()}
        views = [(False, row)]
        if self.pool is not None:
            if poolable(row):
                views.append((True, self.pool.add(row)))
            else:
                self.pool = None
        for pooled, view in views:
            bg, fg_track = self.tracks[pooled]
            bg.add(step, background_flag(view, cfg), background_holds(view, cfg), before["bg"])
            flag = foreground_flag(view, cfg)
            fg_track.add(step, flag, flag, before["fg"])
        self.onset_runs["bg"].add(step, background_onset(row, cfg))
        self.onset_runs["fg"].add(step, foreground_flag(row, cfg))

        if "consecutive_nonfinite" in row:
            bad = int(row["consecutive_nonfinite"]) > 0
        else:
            loss = signal_value(row, "loss")
            bad = loss is not None and not math.isfinite(loss)
        self.nonfinite.add(step, bad)
        if self.nonfinite.length > self.nonfinite_longest[1]:
            self.nonfinite_longest = self.nonfinite.state
        self.params_bad = row.get("params_finite") is False

    def verdict(self) -> Verdict:
        """The verdict on the rows so far (the judge can go on taking rows afterwards)."""
        cfg = self.cfg
        signals = [s for s in SIGNALS if s in self.signals]
        limitations = []
        if "pred_bg_share" not in signals or "target_bg_share" not in signals:
            limitations.append("no predicted/target background shares: over-prediction is read from BG accuracy alone")
        if "fg_pred_mode" not in signals:
            limitations.append("no FG prediction mode: a single-colour FG collapse cannot be seen")
        if not self.rows:
            return Verdict(
                INCONCLUSIVE,
                None,
                ["the series has no metric rows"],
                0,
                {},
                signals_used=signals,
                limitations=limitations,
            )
        final = {}
        for i, name in enumerate(FINAL_SIGNALS):
            mean = _Mean()
            for values in self.final:
                mean.add(values[i])
            final[name] = mean.value
        bg_track, fg_track = self.tracks[self.pool is not None]
        episodes = sorted(bg_track.episodes() + fg_track.episodes(), key=lambda e: e.start)
        activations = [
            Activation(
                a["event"],
                a["step"],
                before := a["before"].value,
                after := a["after"].value,
                (before - after) / before if before and after is not None else None,
            )
            for a in self.activations
        ]
        nonfinite_start, nonfinite_len = self.nonfinite_longest

        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.1%}"

        final_text = (
            f"final {len(self.final)}-step FG acc {fmt(final['fg_acc'])}, BG acc {fmt(final['bg_acc'])}, "
            f"predicted BG {fmt(final['pred_bg_share'])} vs target {fmt(final['target_bg_share'])}"
        )
        at_end = [e for e in episodes if e.at_end]
        ended = [e for e in episodes if not e.at_end]
        if nonfinite_len >= cfg.nonfinite_budget or self.params_bad:
            label, onset = DIVERGED, nonfinite_start
            reasons = [
                f"{nonfinite_len} consecutive non-finite steps from step {nonfinite_start} (budget "
                f"{cfg.nonfinite_budget})"
                if nonfinite_len >= cfg.nonfinite_budget
                else "parameters are non-finite at the last step"
            ]
        elif any(e.kind == "bg" for e in at_end):
            e = next(e for e in at_end if e.kind == "bg")
            label, onset = COLLAPSED, e.start
            reasons = [
                f"background collapse from step {e.start} (background over-predicted, FG accuracy < "
                f"{cfg.fg_acc_floor:.0%}), not recovered: "
                f"FG accuracy never came back to the learned level {cfg.learned_acc:.0%}",
                final_text,
            ]
        elif at_end:
            e = at_end[0]
            label, onset = FG_COLLAPSE, e.start
            reasons = [
                f"foreground collapse (one FG colour > {cfg.fg_mode_share:.0%} of FG-cell predictions beyond its "
                f"target share, or BG under-predicted) from step {e.start} to the end ({e.length} steps)",
                final_text,
            ]
        elif ended:
            e = ended[0]
            label, onset = TRANSIENT, e.start
            reasons = [
                f"{'background' if e.kind == 'bg' else 'foreground'} collapse from step {e.start} to {e.end}, then "
                f"recovered ({len(ended)} episode(s))",
                final_text,
            ]
        elif (
            final["fg_acc"] is not None
            and final["bg_acc"] is not None
            and final["fg_acc"] >= cfg.learned_acc
            and final["bg_acc"] >= cfg.learned_acc
        ):
            label, onset = HEALTHY, None
            reasons = [
                f"no collapse episode of {cfg.min_consecutive}+ steps; FG and BG accuracy >= {cfg.learned_acc:.0%} at "
                "the end",
                final_text,
            ]
        else:
            label, onset = INCONCLUSIVE, None
            reasons = [
                f"no collapse episode of {cfg.min_consecutive}+ steps, but FG or BG accuracy < {cfg.learned_acc:.0%} "
                f"at the end: not learned within {self.rows} steps",
                final_text,
            ]
        if onset is not None:
            activations = [replace(a, onset_offset=onset - a.step) for a in activations]
        onset_after = None
        if onset is not None:
            prior = [
                a for a in activations if self.first_step < a.step <= onset
            ]  # modules live from the first step count as the start
            if prior:
                a = prior[-1]
                names = ", ".join(p.event for p in prior if p.step == a.step)
                onset_after = {"event": names, "step": a.step, "steps_after": onset - a.step}
            else:
                onset_after = {"event": "start", "step": self.first_step, "steps_after": onset - self.first_step}
        return Verdict(
            label, onset, reasons, self.rows, final, episodes, activations, onset_after, signals, limitations
        )


class RunningVerdict:
    """The verdict of a run while it trains, fed the rows each step returns. Each row is judged once;
    calling judge() or early_stop() on the growing series after every step judged it all again (a
    300-step phase 1 spent a fifth of its time there). Rows already there are taken in step order (as
    judge() takes them); later rows must come in that order, as a trainer returns them."""

    def __init__(self, cfg: VerdictConfig | None, rows: Iterable[dict] = ()):
        self.series = SeriesJudge(cfg)
        self.steps: list[int] = []  # the metric rows' steps
        self.extend(in_step_order(rows))

    def extend(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.series.add(row)
            if not row.get("event") and "step" in row:
                self.steps.append(row["step"])

    def verdict(self) -> Verdict:
        return self.series.verdict()

    def early_stop(self, after: int | None) -> str | None:
        """Why a running probe may stop now, or None to go on: a collapse episode still open after `after`
        metric steps has lasted longer than any recovered episode the calibration has seen, so the rest of
        the run cannot change the verdict's class except by a recovery the calibration does not expect."""
        if after is None or len(self.steps) < after:
            return None
        verdict = self.series.verdict()
        if verdict.label not in (COLLAPSED, FG_COLLAPSE):
            return None
        episode = next(e for e in verdict.episodes if e.at_end and (e.kind == "bg") == (verdict.label == COLLAPSED))
        lasted = sum(1 for step in self.steps if step >= episode.start)
        if lasted < after:
            return None
        return (
            f"{verdict.label} from step {episode.start}, still open after {lasted} steps (probe.early_stop_after "
            f"{after})"
        )


def judge(series: list[dict], cfg: VerdictConfig | None = None) -> Verdict:
    """The verdict for a metric series (event rows and metric rows; metric rows are taken in step order,
    each event before the metric row of its own step)."""
    return RunningVerdict(cfg, series).verdict()


def in_step_order(series: Iterable[dict]) -> list[dict]:
    """Metric rows in step order, each event before the metric row of its own step: the order a trainer
    returns them in, and the one SeriesJudge takes."""
    series = list(series)
    events = [r for r in series if r.get("event")]
    rows = sorted((r for r in series if not r.get("event") and "step" in r), key=lambda r: r["step"])
    merged = sorted(
        [(r["step"], 0, i, r) for i, r in enumerate(events)] + [(r["step"], 1, i, r) for i, r in enumerate(rows)],
        key=lambda t: t[:3],
    )
    return [row for *_, row in merged]


def early_stop(series: list[dict], cfg: VerdictConfig, after: int | None) -> str | None:
    """RunningVerdict.early_stop on a whole series (a monitor's recent window)."""
    return RunningVerdict(cfg, series).early_stop(after) if after is not None else None
