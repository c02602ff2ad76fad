"""calibrate on the engineered pair that really differs: background weight 0.2 (learns) vs 2.0 (collapses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from collapse_doctor.experiments.regimes import GRID, by_name, read_regime, regime_yaml

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def weighted(tmp_path: Path, weight: float) -> Path:
    text = (
        (FIXTURES / "seed_old_2a50f2d.yaml")
        .read_text()
        .replace("loss_mode: 'stablemax'", f"loss_mode: 'weighted_stablemax'\n  bg_weight_cap: {weight}")
    )
    path = tmp_path / f"bg_weight_{weight}.yaml"
    path.write_text(text)
    return path


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "collapse_doctor", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("calibrate")
    good, bad = weighted(tmp, 0.2), weighted(tmp, 2.0)
    regime = tmp / "regime.yaml"
    result = cli(
        "calibrate",
        "--good",
        str(good),
        "--bad",
        str(bad),
        "--seeds",
        "4",
        "--regimes",
        "b8",
        "--set",
        "probe.steps=120",
        "--no-confirm",
        "--write",
        str(regime),
        "--json",
        str(tmp / "c.json"),
        "--html",
        str(tmp / "c.html"),
        "--jobs",
        "1",  # in the command's process: the suite's workers keep the cores busy (tests/history/test_bisect.py)
        "--cache-dir",
        str(tmp / "cache"),
        cwd=tmp,
    )
    return tmp, good, regime, result, json.loads((tmp / "c.json").read_text())


@pytest.mark.slow
def test_calibrate_chooses_a_regime_where_the_good_config_learns_and_the_bad_one_separates(calibrated):
    tmp, good, regime, result, data = calibrated
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    row = data["regimes"][0]
    assert row["usable"] and data["chosen"] == "b8" and data["separated"]
    assert all(s["label"] in ("HEALTHY", "TRANSIENT") for s in row["good"])
    assert row["p_holm"] < 0.05 and row["cliffs_delta"] >= 0.474
    assert "separates in b8" in result.stdout


@pytest.mark.slow
def test_the_html_report_opens_with_the_chosen_regime_and_shows_both_sides_per_seed(calibrated):
    tmp, good, regime, result, data = calibrated
    page = (tmp / "c.html").read_text()
    answer = page.split("<p class='answer'>")[1].split("</p>")[0]
    assert answer.startswith("separates in b8") and "p 0.0" in answer
    assert "b8: good" in page and "b8: bad" in page and "separates, p" in page
    row = data["regimes"][0]
    for side in ("good", "bad"):  # one dot per seed, at its fg_auc
        for seed in row[side]:
            assert f"<title>{seed['fg_auc']:.3f}</title>" in page
    assert page.count("<figure>") == 2  # the good side's curves and the bad side's


@pytest.mark.slow
def test_the_regime_file_holds_what_was_measured_and_probe_reads_it(calibrated):
    tmp, good, regime, result, data = calibrated
    text = regime.read_text()
    assert text.startswith("# collapse-doctor regime 'b8'") and "Mann-Whitney" in text
    settings = yaml.safe_load(text)
    assert settings["training"]["batch_size"] == 8 and settings["probe"]["early_stop_after"] is None
    assert settings["probe"]["steps"] == 120  # the --set it was measured under
    out = tmp / "probe.json"
    probe = cli(
        "probe",
        str(good),
        "--regime",
        str(regime),
        "--steps",
        "3",
        "--json",
        str(out),
        "--out",
        str(tmp / "m"),
        cwd=tmp,
    )
    assert probe.returncode in (0, 1, 3), probe.stderr
    ran = json.loads(out.read_text())
    assert ran["config"]["training"]["batch_size"] == 8 and ran["config"]["probe"]["early_stop_after"] is None
    assert ran["ran"]["steps"] == 3  # --steps wins over the regime file


@pytest.mark.slow
def test_the_bad_side_is_measured_in_the_first_usable_regime_only(calibrated):
    """Issue 24, item 6: the walk stops at the first usable regime whether or not the bad side separates
    there, so the grid is one test and its false-alarm rate is the rule's. Two seeds can never separate
    (the smallest exact p is 1/6); every b8 probe comes from the module's cache, and b32 is not probed."""
    tmp = calibrated[0]
    good, bad = tmp / "bg_weight_0.2.yaml", tmp / "bg_weight_2.0.yaml"
    args = ["--good", str(good), "--bad", str(bad), "--seeds", "2", "--regimes", "b8,b32", "--no-confirm"]
    args += ["--set", "probe.steps=120", "--cache-dir", str(tmp / "cache"), "--json", str(tmp / "two.json")]
    result = cli("calibrate", *args, cwd=tmp)
    assert result.returncode == 3, result.stderr
    data = json.loads((tmp / "two.json").read_text())
    assert [r["regime"] for r in data["regimes"]] == ["b8"]  # b32 never ran, on either side
    assert data["regimes"][0]["usable"] and len(data["regimes"][0]["bad"]) == 2 and data["chosen"] is None
    assert "measured in the first usable regime only" in result.stdout


@pytest.mark.slow
def test_no_usable_regime_exits_3_with_the_table(tmp_path):
    # a collapsing config as the "good" one: it never learns, so no regime is usable and nothing is compared
    bad, worse = weighted(tmp_path, 2.0), weighted(tmp_path, 3.0)
    result = cli(
        "calibrate",
        "--good",
        str(bad),
        "--bad",
        str(worse),
        "--seeds",
        "2",
        "--regimes",
        "b8",
        "--set",
        "probe.steps=12",
        "--no-confirm",
        "--jobs",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
        str(tmp_path / "c.json"),
        cwd=tmp_path,
    )
    assert result.returncode == 3, result.stderr
    data = json.loads((tmp_path / "c.json").read_text())
    assert all(r["bad"] == [] for r in data["regimes"])  # the bad side never runs where the good side did not learn
    assert "no regime is usable" in result.stdout and "b8" in result.stdout


def test_bad_input_to_calibrate_is_one_line_exit_2(tmp_path):
    good = weighted(tmp_path, 0.2)
    for args in (
        ["--good", "missing.yaml", "--bad", str(good)],
        ["--good", str(good), "--bad", str(good), "--alpha", "7"],
        ["--good", str(good), "--bad", str(good), "--regimes", "nope"],
    ):
        result = cli("calibrate", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and "error:" in result.stderr


def test_regime_files_round_trip_and_the_grid_is_named():
    regime = by_name("b8-lr-sqrt")
    text = regime_yaml(regime.overrides, ["a comment"])
    assert text.startswith("# a comment")
    assert by_name("warm-b8").name == "warm-b8"
    assert [r.name for r in GRID][0] == "b8"


def test_a_regime_file_with_other_sections_is_refused(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  hidden_dim: 8\n")
    with pytest.raises(Exception, match="regime file holds only"):
        read_regime(path)


def test_sharp_regimes_are_named_cheapest_first_and_warm():
    from collapse_doctor.experiments.regimes import DEFAULT_GRID, QUICK, SHARP, is_warm

    assert [r.name for r in SHARP] == ["warm-b8-p10", "warm-b8-p20", "warm-b8-p40"]
    assert by_name("warm-b8-p20") == SHARP[1] and "probe.steps=20" in SHARP[1].overrides
    assert all(is_warm(r) for r in SHARP) and not any(is_warm(r) for r in GRID)
    assert DEFAULT_GRID[: len(SHARP)] == SHARP and DEFAULT_GRID[len(SHARP) :] == GRID
    assert by_name("quick") is QUICK and QUICK.overrides == ()


def test_a_warm_control_stays_learned_when_phase_1_learned_and_phase_2_did_not_collapse():
    from collapse_doctor.experiments.regimes import SHARP
    from collapse_doctor.experiments.run_setup import WarmStartReport
    from collapse_doctor.sweeps.calibrate import stays_learned
    from collapse_doctor.sweeps.jobs import ProbeSummary

    def summary(label, learned=None):
        warm = None if learned is None else WarmStartReport("base", 200, learned, 0.2, True, "phase1.pt")
        return ProbeSummary(label, None, 0, {}, [], 1.0, "k", "m", warm_start=warm)

    warm, cold = SHARP[0], GRID[0]
    assert stays_learned(summary("INCONCLUSIVE", True), warm)  # a short phase 2 ends near the learned level
    assert stays_learned(summary("HEALTHY", True), warm)
    assert not stays_learned(summary("INCONCLUSIVE", False), warm)  # phase 1 never learned
    assert not stays_learned(summary("COLLAPSED", True), warm)
    assert stays_learned(summary("TRANSIENT"), cold) and not stays_learned(summary("INCONCLUSIVE"), cold)


def test_the_html_report_shows_the_confirmation_seeds_beside_the_chosen_regime():
    from collapse_doctor.cli.sweep_reports import calibration_html
    from collapse_doctor.sweeps.calibrate import Calibration, RegimeResult

    chosen = RegimeResult(by_name("warm-b8-p10"), [], usable=True, p=0.004, p_holm=0.004, delta=1.0, separates=True)
    result = Calibration("good.yaml", "bad.yaml", [0, 1, 2, 3, 4], 4, 0.05, 0.474, False, [chosen], chosen=chosen)
    result.confirmation = {
        "seeds": [5, 6, 7, 8, 9],
        "good": "INCONCLUSIVE 5",
        "bad": "COLLAPSED 5",
        "good_fg_auc": [0.15, 0.12, 0.19, 0.2, 0.14],
        "bad_fg_auc": [0.011, 0.012, 0.013, 0.014, 0.015],
        "p": 0.00397,
        "delta": 1.0,
        "confirmed": True,
    }
    page = calibration_html(result)
    assert "warm-b8-p10: bad, seeds 5-9" in page and "confirmed, p 0.00397" in page
    assert "<title>0.013</title>" in page and "confirmed on fresh seeds" in page
