"""Hand-written metric series for verdict tests: no torch, each built to show one verdict."""

from __future__ import annotations


def row(
    step, fg=0.4, bg=0.8, pred_bg=0.55, target_bg=0.55, cells=400, mode=3, mode_share=0.3, mode_target=0.3, **extra
):
    out = {
        "step": step,
        "fg_acc": fg,
        "bg_acc": bg,
        "pred_bg_share": pred_bg,
        "target_bg_share": target_bg,
        "valid_cells": cells,
        "loss": 1.0,
        "fg_pred_mode": mode,
        "fg_pred_mode_share": mode_share,
        "fg_pred_mode_target_share": mode_target,
        "consecutive_nonfinite": 0,
        "params_finite": True,
    }
    out.update(extra)
    return out


def healthy(n=40):
    return [row(s, fg=0.1 + 0.3 * s / n, bg=0.5 + 0.4 * s / n) for s in range(n)]


def collapsed(n=40, onset=10):
    """Learns a little, then background everywhere from `onset` to the end."""
    return [row(s) if s < onset else row(s, fg=0.0, bg=1.0, pred_bg=0.99, mode=0, mode_share=0.99) for s in range(n)]


def collapsed_flickering(n=60, onset=10):
    """Collapsed from `onset`, FG accuracy flickering 0-4 % (small batches) while background stays over-predicted."""
    return [
        row(s)
        if s < onset
        else row(s, fg=[0.0, 0.04, 0.01, 0.03, 0.0][s % 5], bg=0.98, pred_bg=0.93, mode=0, mode_share=0.95)
        for s in range(n)
    ]


def transient(n=60, start=5, end=15):
    return [
        row(s, fg=0.0, bg=1.0, pred_bg=0.99, mode=0, mode_share=0.99) if start <= s < end else row(s) for s in range(n)
    ]


def fg_collapse(n=40, onset=10):
    """One foreground colour predicted on almost every FG cell, far beyond its share of the targets."""
    return [
        row(s) if s < onset else row(s, fg=0.12, bg=0.1, pred_bg=0.05, mode=4, mode_share=0.9, mode_target=0.12)
        for s in range(n)
    ]


def diverged(n=30, onset=12, budget=10):
    rows = [row(s) for s in range(onset)]
    rows += [
        row(s, loss="nan", consecutive_nonfinite=s - onset + 1, params_finite=True)
        for s in range(onset, onset + budget)
    ]
    return rows


def inconclusive(n=40):
    return [row(s, fg=0.1, bg=0.12) for s in range(n)]


# One series that exercises every verdict threshold, for the key-effect test: an activation, a short
# transient episode, a flickering collapse to the end, and a non-finite run of 4 steps.
VERDICT_SERIES = (
    [row(s, fg=0.3 + 0.01 * s) for s in range(12)]
    + [{"step": 12, "event": "hyper_lora on"}]
    + [row(s, fg=0.01, bg=0.99, pred_bg=0.8, cells=3000, mode=0, mode_share=0.7) for s in range(12, 16)]
    + [
        row(
            s,
            fg=0.25,
            bg=0.7,
            pred_bg=0.75,
            cells=3000,
            mode=5,
            mode_share=0.6,
            mode_target=0.3,
            consecutive_nonfinite=s - 15,
            loss="nan",
        )
        for s in range(16, 20)
    ]
    + [row(s, fg=0.01, bg=0.9, pred_bg=0.6, cells=3000) for s in range(20, 26)]
    + [
        row(
            s, fg=[0.0, 0.025, 0.0][s % 3], bg=0.98, pred_bg=0.96, cells=[150, 600, 200][s % 3], mode=0, mode_share=0.95
        )
        for s in range(26, 46)
    ]
)
