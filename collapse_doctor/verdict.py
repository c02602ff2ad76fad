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
from dataclasses import asdict, dataclass, field, replace

from collapse_doctor.config import VerdictConfig
from collapse_doctor.errors import ExitCode

HEALTHY, COLLAPSED, TRANSIENT, FG_COLLAPSE, DIVERGED, INCONCLUSIVE = "HEALTHY", "COLLAPSED", "TRANSIENT", "FG_COLLAPSE", "DIVERGED", "INCONCLUSIVE"
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


# --------------------------------------------------------------------------------------------------
# Per-step flags
# --------------------------------------------------------------------------------------------------
def _num(row: dict, name: str) -> float | None:
    value = row.get(name)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return float(value)


def pooled_rows(rows: list[dict], cfg: VerdictConfig) -> list[dict]:
    """Row i's signals pooled (cell-weighted) with the rows before it until the pool holds
    cfg.pool_fg_cells FG-target cells. Rows without `valid_cells` (a scanned log) stay as they are.
    A trailing window only looks back, so a flag never appears before the step that completes it."""
    if cfg.pool_fg_cells <= 0 or not all(_num(r, "valid_cells") is not None and _num(r, "target_bg_share") is not None for r in rows):
        return rows
    out = []
    for i, row in enumerate(rows):
        window, fg_cells = [], 0.0
        for j in range(i, -1, -1):
            window.append(rows[j])
            fg_cells += _num(rows[j], "valid_cells") * (1 - _num(rows[j], "target_bg_share"))
            if fg_cells >= cfg.pool_fg_cells:
                break
        out.append({**row, **_pool(window)})
    return out


def _pool(window: list[dict]) -> dict:
    cells = [_num(r, "valid_cells") for r in window]
    bg = [c * _num(r, "target_bg_share") for c, r in zip(cells, window)]
    fg = [c - b for c, b in zip(cells, bg)]

    def weighted(name: str, weights: list[float]) -> float | None:
        pairs = [(_num(r, name), w) for r, w in zip(window, weights) if _num(r, name) is not None and w > 0]
        total = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / total if total else None

    def weighted_vector(name: str, weights: list[float]) -> list[float] | None:
        pairs = [(r.get(name), w) for r, w in zip(window, weights) if isinstance(r.get(name), list) and w > 0]
        total = sum(w for _, w in pairs)
        if not total:
            return None
        return [sum((v[k] or 0.0) * w for v, w in pairs) / total for k in range(len(pairs[0][0]))]

    pooled = {
        "fg_acc": weighted("fg_acc", fg),
        "bg_acc": weighted("bg_acc", bg),
        "pred_bg_share": weighted("pred_bg_share", cells),
        "target_bg_share": weighted("target_bg_share", cells),
        "target_share": weighted_vector("target_share", cells),
        "fg_pred_share": weighted_vector("fg_pred_share", fg),
        "pooled_steps": len(window),
    }
    return {k: v for k, v in pooled.items() if v is not None}


def _background_over(row: dict, cfg: VerdictConfig) -> tuple[bool, float] | None:
    """(background over-predicted, FG accuracy) at this row; None when the row cannot tell."""
    fg = _num(row, "fg_acc")
    if fg is None or math.isnan(fg):
        return None
    pred, target = _num(row, "pred_bg_share"), _num(row, "target_bg_share")
    if pred is not None and target is not None:
        return pred - target > cfg.bg_excess or pred > cfg.bg_share_max, fg
    bg = _num(row, "bg_acc")
    if bg is None:
        return None
    return bg >= cfg.bg_share_max, fg  # without shares: background is (nearly) always right


def background_flag(row: dict, cfg: VerdictConfig) -> bool | None:
    """Background over-predicted and FG accuracy near zero at this step; None when the row cannot tell."""
    state = _background_over(row, cfg)
    return None if state is None else state[0] and state[1] < cfg.fg_acc_floor


def _fg_mode(row: dict) -> tuple[int | None, float | None, float | None]:
    """(mode colour of the predictions on FG-target cells, its share there, its share of the FG targets)."""
    shares, targets = row.get("fg_pred_share"), row.get("target_share")
    if isinstance(shares, list) and shares:
        mode = max(range(len(shares)), key=lambda k: shares[k] or 0.0)
        target_fg = None
        if isinstance(targets, list) and mode < len(targets) and targets[0] is not None and targets[0] < 1:
            target_fg = (targets[mode] or 0.0) / (1 - targets[0]) if mode else None
        return mode, shares[mode], target_fg
    return row.get("fg_pred_mode"), _num(row, "fg_pred_mode_share"), _num(row, "fg_pred_mode_target_share")


def foreground_flag(row: dict, cfg: VerdictConfig) -> bool | None:
    """Foreground collapse at this step: one FG colour dominates the predictions on FG-target cells beyond
    its share of them, or background is under-predicted with BG accuracy near zero."""
    bg = _num(row, "bg_acc")
    pred, target = _num(row, "pred_bg_share"), _num(row, "target_bg_share")
    mode, mode_share, mode_target = _fg_mode(row)
    known = False
    if mode is not None and mode_share is not None:
        known = True
        if mode != 0 and mode_share > cfg.fg_mode_share and mode_share - (mode_target or 0.0) > cfg.bg_excess:
            return True
    if bg is not None and pred is not None and target is not None:
        known = True
        if target - pred > cfg.bg_excess and bg < cfg.fg_acc_floor:
            return True
    return False if known else None


def background_holds(row: dict, cfg: VerdictConfig) -> bool | None:
    """A background episode goes on until FG accuracy is back at learned_acc: recovery means learning
    again. FG accuracy flickering just above the floor is not a recovery, and neither is a dip in BG
    accuracy or in the predicted background share while FG accuracy stays near zero (a real log split
    one 360-step collapse into 11 short episodes that way, and put its onset 364 steps late)."""
    fg = _num(row, "fg_acc")
    return None if fg is None or math.isnan(fg) else fg < cfg.learned_acc


def _background_onset(row: dict, cfg: VerdictConfig) -> bool | None:
    """Where a background episode's onset can lie: background over-predicted and FG accuracy below the
    learned level (an episode lasts on FG accuracy alone, but it starts with the background taking over)."""
    state = _background_over(row, cfg)
    return None if state is None else state[0] and state[1] < cfg.learned_acc


def _episodes(steps: list[int], enter: list[bool | None], hold: list[bool | None], kind: str, cfg: VerdictConfig) -> list[Episode]:
    """Episodes with hysteresis: one starts after min_consecutive `enter` rows in a row, and ends after
    min_consecutive rows in a row where it no longer `hold`s. Rows that cannot tell (None) are skipped."""
    out: list[Episode] = []
    known = [i for i, (e, h) in enumerate(zip(enter, hold)) if e is not None and h is not None]
    run_start, run = None, 0  # consecutive entering rows while outside an episode
    start = last_hold = None  # the open episode
    length = exits = 0
    for i in known:
        if start is None:
            if enter[i]:
                run_start = i if run == 0 else run_start
                run += 1
                if run >= cfg.min_consecutive:
                    start, last_hold, length, exits = run_start, i, run, 0
                    run = 0
            else:
                run = 0
        elif hold[i] or enter[i]:
            last_hold, exits = i, 0
            length += 1
        else:
            exits += 1
            if exits >= cfg.min_consecutive:
                out.append(Episode(kind, steps[start], steps[last_hold], length, False))
                start = None
    if start is not None:
        out.append(Episode(kind, steps[start], steps[last_hold], length, True))  # still open at the last row
    return out


def _refine_start(episode: Episode, rows: list[dict], cfg: VerdictConfig) -> Episode:
    """Pooling detects an episode a few steps late; its onset is the first step of the unbroken run of
    raw (unpooled) steps, ending at the detected start, in which the episode's condition already held."""
    holds = _background_onset if episode.kind == "bg" else foreground_flag
    index = next(i for i, r in enumerate(rows) if r["step"] == episode.start)
    first = index
    while first > 0 and holds(rows[first - 1], cfg):
        first -= 1
    if first == index:
        return episode
    return replace(episode, start=rows[first]["step"], length=episode.length + index - first)


def _nonfinite_run(rows: list[dict], cfg: VerdictConfig) -> tuple[int | None, int]:
    """(first step of the longest run of non-finite steps, its length)."""
    best_start, best, start, run = None, 0, None, 0
    for row in rows:
        if "consecutive_nonfinite" in row:
            bad = int(row["consecutive_nonfinite"]) > 0
        else:
            loss = _num(row, "loss")
            bad = loss is not None and not math.isfinite(loss)
        if bad:
            start = row["step"] if run == 0 else start
            run += 1
            if run > best:
                best_start, best = start, run
        else:
            run = 0
    return best_start, best


def _window_mean(rows: list[dict], name: str, lo: int, hi: int) -> float | None:
    values = [v for r in rows if lo <= r["step"] < hi for v in [_num(r, name)] if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else None


# --------------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------------
SIGNALS = ("fg_acc", "bg_acc", "pred_bg_share", "target_bg_share", "loss", "fg_pred_mode", "fg_pred_mode_share", "consecutive_nonfinite")


def judge(series: list[dict], cfg: VerdictConfig | None = None) -> Verdict:
    """The verdict for a metric series (event rows and metric rows, in step order)."""
    cfg = cfg or VerdictConfig()
    events = [r for r in series if r.get("event")]
    rows = sorted((r for r in series if not r.get("event") and "step" in r), key=lambda r: r["step"])
    signals = [s for s in SIGNALS if any(r.get(s) is not None for r in rows)]
    limitations = []
    if "pred_bg_share" not in signals or "target_bg_share" not in signals:
        limitations.append("no predicted/target background shares: over-prediction is read from BG accuracy alone")
    if "fg_pred_mode" not in signals:
        limitations.append("no FG prediction mode: a single-colour FG collapse cannot be seen")
    if not rows:
        return Verdict(INCONCLUSIVE, None, ["the series has no metric rows"], 0, {}, signals_used=signals, limitations=limitations)
    steps = [r["step"] for r in rows]
    last_step = steps[-1]
    final_lo = rows[max(0, len(rows) - cfg.final_window)]["step"]
    final = {name: _window_mean(rows, name, final_lo, last_step + 1) for name in ("fg_acc", "bg_acc", "pred_bg_share", "target_bg_share")}
    pooled = pooled_rows(rows, cfg)
    fg_flags = [foreground_flag(r, cfg) for r in pooled]
    episodes = _episodes(steps, [background_flag(r, cfg) for r in pooled], [background_holds(r, cfg) for r in pooled], "bg", cfg) + _episodes(steps, fg_flags, fg_flags, "fg", cfg)
    episodes = [_refine_start(e, rows, cfg) for e in episodes]
    episodes.sort(key=lambda e: e.start)
    activations = [
        Activation(
            e["event"],
            e["step"],
            before := _window_mean(rows, "fg_acc", e["step"] - cfg.window_before, e["step"]),
            after := _window_mean(rows, "fg_acc", e["step"], e["step"] + cfg.window_after),
            (before - after) / before if before and after is not None else None,
        )
        for e in events
    ]
    nonfinite_start, nonfinite_len = _nonfinite_run(rows, cfg)
    params_bad = rows[-1].get("params_finite") is False

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1%}"

    final_text = f"final {len(rows[-cfg.final_window:])}-step FG acc {fmt(final['fg_acc'])}, BG acc {fmt(final['bg_acc'])}, predicted BG {fmt(final['pred_bg_share'])} vs target {fmt(final['target_bg_share'])}"
    at_end = [e for e in episodes if e.at_end]
    ended = [e for e in episodes if not e.at_end]
    if nonfinite_len >= cfg.nonfinite_budget or params_bad:
        label, onset = DIVERGED, nonfinite_start
        reasons = [f"{nonfinite_len} consecutive non-finite steps from step {nonfinite_start} (budget {cfg.nonfinite_budget})" if nonfinite_len >= cfg.nonfinite_budget else "parameters are non-finite at the last step"]
    elif any(e.kind == "bg" for e in at_end):
        e = next(e for e in at_end if e.kind == "bg")
        label, onset = COLLAPSED, e.start
        reasons = [
            f"background collapse from step {e.start} (background over-predicted, FG accuracy < {cfg.fg_acc_floor:.0%}), not recovered: "
            f"FG accuracy never came back to the learned level {cfg.learned_acc:.0%}",
            final_text,
        ]
    elif at_end:
        e = at_end[0]
        label, onset = FG_COLLAPSE, e.start
        reasons = [f"foreground collapse (one FG colour > {cfg.fg_mode_share:.0%} of FG-cell predictions beyond its target share, or BG under-predicted) from step {e.start} to the end ({e.length} steps)", final_text]
    elif ended:
        e = ended[0]
        label, onset = TRANSIENT, e.start
        reasons = [f"{'background' if e.kind == 'bg' else 'foreground'} collapse from step {e.start} to {e.end}, then recovered ({len(ended)} episode(s))", final_text]
    elif final["fg_acc"] is not None and final["bg_acc"] is not None and final["fg_acc"] >= cfg.learned_acc and final["bg_acc"] >= cfg.learned_acc:
        label, onset = HEALTHY, None
        reasons = [f"no collapse episode of {cfg.min_consecutive}+ steps; FG and BG accuracy >= {cfg.learned_acc:.0%} at the end", final_text]
    else:
        label, onset = INCONCLUSIVE, None
        reasons = [f"no collapse episode of {cfg.min_consecutive}+ steps, but FG or BG accuracy < {cfg.learned_acc:.0%} at the end: not learned within {len(rows)} steps", final_text]
    if onset is not None:
        activations = [replace(a, onset_offset=onset - a.step) for a in activations]
    onset_after = None
    if onset is not None:
        prior = [a for a in activations if steps[0] < a.step <= onset]  # modules live from the first step count as the start
        if prior:
            a = prior[-1]
            names = ", ".join(p.event for p in prior if p.step == a.step)
            onset_after = {"event": names, "step": a.step, "steps_after": onset - a.step}
        else:
            onset_after = {"event": "start", "step": steps[0], "steps_after": onset - steps[0]}
    return Verdict(label, onset, reasons, len(rows), final, episodes, activations, onset_after, signals, limitations)


def early_stop(series: list[dict], cfg: VerdictConfig, after: int | None) -> str | None:
    """Why a running probe may stop now, or None to go on: a collapse episode still open after `after`
    metric steps has lasted longer than any recovered episode the calibration has seen, so the rest of
    the run cannot change the verdict's class except by a recovery the calibration does not expect."""
    if after is None:
        return None
    rows = [r for r in series if not r.get("event") and "step" in r]
    if len(rows) < after:
        return None
    verdict = judge(series, cfg)
    if verdict.label not in (COLLAPSED, FG_COLLAPSE):
        return None
    episode = next(e for e in verdict.episodes if e.at_end and (e.kind == "bg") == (verdict.label == COLLAPSED))
    lasted = sum(1 for r in rows if r["step"] >= episode.start)
    if lasted < after:
        return None
    return f"{verdict.label} from step {episode.start}, still open after {lasted} steps (probe.early_stop_after {after})"
