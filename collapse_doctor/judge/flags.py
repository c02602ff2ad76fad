"""What one step of a series says: background over-predicted with FG accuracy near zero, a foreground
collapse, or neither; and the trailing pool of steps that keeps small batches from flickering across
the thresholds. Pure functions of rows; docs/verdicts.md justifies each threshold."""

from __future__ import annotations

import math
from collections import deque

from collapse_doctor.config import VerdictConfig


def signal_value(row: dict, name: str) -> float | None:
    value = row.get(name)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return float(value)


def poolable(row: dict) -> bool:
    return signal_value(row, "valid_cells") is not None and signal_value(row, "target_bg_share") is not None


class SignalPool:
    """Row i's signals pooled (cell-weighted) with the rows before it until the pool holds `fg_cells`
    FG-target cells; a trailing window only looks back, so a flag never appears before the step that
    completes it. Rows older than the window can never rejoin a later one (FG cells are not negative),
    so only the window is kept."""

    def __init__(self, fg_cells: int):
        self.fg_cells, self.window = fg_cells, deque()

    def add(self, row: dict) -> dict:
        self.window.append(row)
        window, fg_cells = [], 0.0
        for previous in reversed(self.window):  # summed newest first, as the window is defined
            window.append(previous)
            fg_cells += signal_value(previous, "valid_cells") * (1 - signal_value(previous, "target_bg_share"))
            if fg_cells >= self.fg_cells:
                break
        for _ in range(len(self.window) - len(window)):
            self.window.popleft()
        return {**row, **_pool(window)}


def _pool(window: list[dict]) -> dict:
    cells = [signal_value(r, "valid_cells") for r in window]
    bg = [c * signal_value(r, "target_bg_share") for c, r in zip(cells, window)]
    fg = [c - b for c, b in zip(cells, bg)]

    def weighted(name: str, weights: list[float]) -> float | None:
        pairs = [
            (signal_value(r, name), w) for r, w in zip(window, weights) if signal_value(r, name) is not None and w > 0
        ]
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
    fg = signal_value(row, "fg_acc")
    if fg is None or math.isnan(fg):
        return None
    pred, target = signal_value(row, "pred_bg_share"), signal_value(row, "target_bg_share")
    if pred is not None and target is not None:
        return pred - target > cfg.bg_excess or pred > cfg.bg_share_max, fg
    bg = signal_value(row, "bg_acc")
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
    return (
        row.get("fg_pred_mode"),
        signal_value(row, "fg_pred_mode_share"),
        signal_value(row, "fg_pred_mode_target_share"),
    )


def foreground_flag(row: dict, cfg: VerdictConfig) -> bool | None:
    """Foreground collapse at this step: one FG colour dominates the predictions on FG-target cells beyond
    its share of them, or background is under-predicted with BG accuracy near zero."""
    bg = signal_value(row, "bg_acc")
    pred, target = signal_value(row, "pred_bg_share"), signal_value(row, "target_bg_share")
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
    fg = signal_value(row, "fg_acc")
    return None if fg is None or math.isnan(fg) else fg < cfg.learned_acc


def background_onset(row: dict, cfg: VerdictConfig) -> bool | None:
    """Where a background episode's onset can lie: background over-predicted and FG accuracy below the
    learned level (an episode lasts on FG accuracy alone, but it starts with the background taking over)."""
    state = _background_over(row, cfg)
    return None if state is None else state[0] and state[1] < cfg.learned_acc
