"""The verdict module on hand-written series, one per verdict, without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from series import collapsed, collapsed_flickering, diverged, fg_collapse, healthy, inconclusive, row, transient

from collapse_doctor.config import VerdictConfig
from collapse_doctor.errors import ExitCode
from collapse_doctor.judge.verdict import BAD_VERDICTS, GOOD_VERDICTS, early_stop, exit_code, is_good, judge


def test_the_verdict_module_does_not_import_torch():
    code = "import sys, collapse_doctor.judge.verdict; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize(
    "series, label, onset",
    [
        (healthy(), "HEALTHY", None),
        (collapsed(onset=10), "COLLAPSED", 10),
        (collapsed_flickering(onset=10), "COLLAPSED", None),
        (transient(start=5, end=15), "TRANSIENT", 5),
        (fg_collapse(onset=10), "FG_COLLAPSE", 10),
        (diverged(onset=12), "DIVERGED", 12),
        (inconclusive(), "INCONCLUSIVE", None),
    ],
)
def test_each_verdict_from_its_series(series, label, onset):
    verdict = judge(series)
    assert verdict.label == label, verdict.reasons
    if onset is not None:
        assert verdict.onset_step == onset
    json.dumps(verdict.to_json())  # serialisable as is


def test_flickering_fg_accuracy_does_not_split_a_sustained_collapse():
    """Per-step FG accuracy of 0-4 % around the 2 % floor: pooled, and held while BG stays over-predicted."""
    verdict = judge(collapsed_flickering(onset=10))
    assert verdict.label == "COLLAPSED"
    assert 10 <= verdict.onset_step <= 16
    assert len(verdict.episodes) == 1


def test_a_collapse_needs_min_consecutive_steps():
    series = [row(s) for s in range(20)]
    series[8] = row(8, fg=0.0, bg=1.0, pred_bg=0.99, cells=5000)
    series[9] = row(9, fg=0.0, bg=1.0, pred_bg=0.99, cells=5000)
    assert judge(series).label == "HEALTHY"
    assert judge(series, VerdictConfig(min_consecutive=2)).label == "TRANSIENT"


def test_onset_is_placed_relative_to_the_activation_before_it():
    series = collapsed(n=40, onset=25)
    series.insert(20, {"step": 20, "event": "hyper_lora on"})
    verdict = judge(series)
    assert verdict.onset_after == {"event": "hyper_lora on", "step": 20, "steps_after": 5}
    activation = verdict.activations[0]
    assert activation.fg_acc_before == pytest.approx(0.4) and activation.fg_acc_after < 0.4
    assert verdict.to_json()["activations"][0]["relative_fg_drop"] > 0
    assert activation.onset_offset == 5


def test_non_finite_runs_shorter_than_the_budget_are_not_divergence():
    series = diverged(onset=12, budget=4) + [row(s) for s in range(16, 40)]
    assert judge(series).label == "HEALTHY"
    assert judge(series, VerdictConfig(nonfinite_budget=4)).label == "DIVERGED"


def test_a_log_with_only_accuracies_is_judged_and_says_what_it_lacks():
    series = [{"step": s, "fg_acc": 0.3 if s < 10 else 0.0, "bg_acc": 0.7 if s < 10 else 1.0} for s in range(30)]
    verdict = judge(series)
    assert verdict.label == "COLLAPSED" and verdict.onset_step == 10
    assert verdict.signals_used == ["fg_acc", "bg_acc"]
    assert any("background shares" in text for text in verdict.limitations)


def test_good_and_bad_classes_and_exit_codes():
    assert GOOD_VERDICTS == {"HEALTHY", "TRANSIENT"} and BAD_VERDICTS == {"COLLAPSED", "FG_COLLAPSE", "DIVERGED"}
    assert is_good("INCONCLUSIVE") is None
    assert [exit_code(v) for v in ("HEALTHY", "TRANSIENT", "COLLAPSED", "FG_COLLAPSE", "DIVERGED", "INCONCLUSIVE")] == [
        ExitCode.GOOD,
        ExitCode.GOOD,
        ExitCode.BAD,
        ExitCode.BAD,
        ExitCode.BAD,
        ExitCode.INCONCLUSIVE,
    ]


def test_empty_series_is_inconclusive():
    assert judge([]).label == "INCONCLUSIVE"


def test_early_stop_waits_for_an_episode_longer_than_any_recovered_one():
    cfg = VerdictConfig()
    assert "COLLAPSED from step 10, still open after 50 steps" in early_stop(collapsed(n=60, onset=10), cfg, 40)
    assert early_stop(collapsed(n=45, onset=10), cfg, 40) is None  # open 35 steps: could still recover
    assert early_stop(collapsed(n=60, onset=10), cfg, None) is None  # disabled
    assert early_stop(transient(n=60, start=5, end=15), cfg, 5) is None  # recovered: go on
    assert early_stop(healthy(n=60), cfg, 5) is None
    assert "FG_COLLAPSE" in early_stop(fg_collapse(n=60, onset=10), cfg, 40)


def test_the_series_judge_keeps_only_its_windows_on_a_long_run():
    """Memory does not grow with the run: after 5,000 steps the judge holds its windows, no history."""
    from collapse_doctor.judge.verdict import SeriesJudge

    cfg = VerdictConfig()
    streaming = SeriesJudge(cfg)
    series = [{"step": 0, "event": "hyper_lora on"}]
    for step in range(5000):
        collapsed = 1000 <= step < 1400
        row = {
            "step": step,
            "fg_acc": 0.0 if collapsed else 0.5,
            "bg_acc": 1.0 if collapsed else 0.9,
            "pred_bg_share": 0.99 if collapsed else 0.6,
            "target_bg_share": 0.6,
            "valid_cells": 400,
        }
        series.append(row)
    for row in series:
        streaming.add(row)
    assert len(streaming.recent) <= cfg.window_before + cfg.window_after + 1
    assert len(streaming.final) == cfg.final_window
    assert len(streaming.pool.window) <= 1 + cfg.pool_fg_cells // 160
    verdict = streaming.verdict()
    assert verdict.label == "TRANSIENT" and verdict.episodes[0].start == 1000
    assert verdict.to_json() == judge(series, cfg).to_json()


def test_the_series_judge_refuses_steps_out_of_order():
    from collapse_doctor.judge.verdict import SeriesJudge

    streaming = SeriesJudge()
    streaming.add({"step": 3, "fg_acc": 0.5, "bg_acc": 0.9})
    with pytest.raises(ValueError, match="step 3 does not follow step 3"):
        streaming.add({"step": 3, "fg_acc": 0.5, "bg_acc": 0.9})


@pytest.mark.parametrize(
    "fg, label",
    [
        (0.015, "COLLAPSED"),
        (0.02, "INCONCLUSIVE"),
        (0.05, "INCONCLUSIVE"),
        (0.10, "INCONCLUSIVE"),
        (0.19, "INCONCLUSIVE"),
    ],
)
def test_fg_held_between_the_floor_and_the_learned_level_is_not_a_collapse(fg, label):
    """Issue 24, item 6 (a mutation left this open): background over-predicted for 30 steps with FG accuracy
    held at `fg`. A collapse needs FG below the 2 % floor (reference 7.3, strictly below); between it and
    the 20 % learned level the run has not collapsed but has not learned either: INCONCLUSIVE, no episode."""
    series = [row(s, fg=0.4, bg=0.8, cells=5000) for s in range(10)]
    series += [row(s, fg=fg, bg=0.99, pred_bg=0.9, target_bg=0.55, cells=5000) for s in range(10, 40)]
    verdict = judge(series)
    assert verdict.label == label, verdict.reasons
    assert (len(verdict.episodes) == 1) is (label == "COLLAPSED")
    if label == "COLLAPSED":
        assert verdict.onset_step == 10


@pytest.mark.parametrize(
    "make", [healthy, collapsed, collapsed_flickering, transient, fg_collapse, diverged, inconclusive]
)
def test_a_running_verdict_equals_judging_the_series_so_far_at_every_step(make):
    """RunningVerdict (what a probe and phase 1 ask after every step) takes each row once; after every step
    its verdict and its early-stop reason are those of judge() and early_stop() on the whole prefix."""
    from collapse_doctor.judge.verdict import RunningVerdict

    cfg = VerdictConfig()
    series = make()
    series.insert(len(series) // 3, {"step": series[len(series) // 3]["step"], "event": "hyper_lora on"})
    running = RunningVerdict(cfg, series[:5])  # rows already there (a resumed phase 1) come first
    stops = 0
    for end in range(5, len(series) + 1):
        if end > 5:
            running.extend([series[end - 1]])
        prefix = series[:end]
        assert running.verdict() == judge(prefix, cfg), (make.__name__, end)
        for after in (5, 10):
            assert running.early_stop(after) == early_stop(prefix, cfg, after), (make.__name__, end, after)
            stops += running.early_stop(after) is not None
    assert stops > 0 or make not in (collapsed, collapsed_flickering, fg_collapse)  # the stop was exercised
