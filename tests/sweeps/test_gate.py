"""gate: majority of seeds, exit codes, JUnit XML, GitHub annotations, [tool.collapse-doctor] settings.

The real gates run the two configs of the bisect fixture history (good: weighted stablemax with
background weight 0.2; bad: weight 2.0) through the session's probe cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from collapse_doctor.config import load_config
from collapse_doctor.errors import ConfigError
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.sweeps.gate import (
    GateResult,
    _culprit,
    find_tool_table,
    github_annotation,
    junit_xml,
    key_line,
    majority,
)
from collapse_doctor.sweeps.jobs import ProbeSummary

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fixtures"))
import git_history  # noqa: E402
from robust import labels_far_from_boundaries  # noqa: E402


def test_majority_decides_as_soon_as_more_than_half_of_the_planned_seeds_agree():
    assert majority([True, True], 3) is True
    assert majority([False, False], 3) is False
    assert majority([True, False], 3) is None  # the third seed decides
    assert majority([True, None], 3) is None
    assert majority([None, None], 3) == "undecided"  # the third cannot make a majority
    assert majority([True, False, None], 3) == "undecided"
    assert majority([False, False, True], 3) is False


def test_key_line_finds_nested_keys_and_falls_back_to_the_section():
    text = (
        "# comment\nmodel:\n  hidden_dim: 64\n  use_hyperlora: true\ntraining:\n  lr: 1\n  loo_training:\n    "
        "enabled: true\n    start_epoch: 3\n"
    )
    assert key_line(text, "model.use_hyperlora") == 4
    assert key_line(text, "training.loo_training.start_epoch") == 9
    assert key_line(text, "training.solver_context_start_epoch") == 5  # absent: its section
    assert key_line(text, "data.max_grid_size") is None


def test_tool_table_from_pyproject(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.collapse-doctor]\nconfig = "c.yaml"\nseeds = 5\n[tool.collapse-doctor.verdict]\nbg_excess = '
        "0.2\n[tool.collapse-doctor.probe]\nearly_stop_after = 30\n"
    )
    table = find_tool_table(tmp_path / "sub")
    assert table.config == "c.yaml" and table.seeds == 5
    assert table.overrides == ["verdict.bg_excess=0.2", "probe.early_stop_after=30"]
    (tmp_path / "pyproject.toml").write_text("[tool.collapse-doctor]\nseeds = 0\n")
    with pytest.raises(ConfigError, match="seeds: expected a positive integer"):
        find_tool_table(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert find_tool_table(tmp_path / "sub").path is None


def _summary(seed, label, onset, events=()):
    return ProbeSummary(
        label,
        onset,
        seed,
        {"fg_acc": 0.01, "bg_acc": 0.99, "pred_bg_share": 0.97, "target_bg_share": 0.6},
        [f"{label} reason"],
        1.5,
        "k",
        "m",
        [],
        list(events),
    )


def test_a_collapse_right_after_an_activation_points_at_its_staging_key(tmp_path):
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text("model:\n  use_hyperlora: true\n  hyperlora_start_epoch: 2\ntraining:\n  batch_size: 8\n")
    config, _ = apply_preset(load_config(None, ["model.hyperlora_start_epoch=2"]), PRESETS["tiny"])
    events = [{"step": 32, "event": "hyper_lora on"}]
    culprit = _culprit(
        [_summary(0, "COLLAPSED", 35, events), _summary(1, "COLLAPSED", 40, events)], config, str(yaml_path)
    )
    assert culprit == {"event": "hyper_lora on", "key": "model.hyperlora_start_epoch", "line": 3, "seeds": 2}
    assert (
        _culprit([_summary(0, "COLLAPSED", 3, events), _summary(1, "COLLAPSED", 5, events)], config, str(yaml_path))
        is None
    )  # before it


def test_junit_and_annotation_carry_the_evidence():
    result = GateResult(
        "COLLAPSED",
        False,
        3,
        [_summary(0, "COLLAPSED", 7), _summary(1, "HEALTHY", None), _summary(2, "COLLAPSED", 5)],
        "/ws/configs/x.yaml",
        [],
        120,
        9.5,
        {"event": "hyper_lora on", "key": "training.hyperlora_start_epoch", "line": 12, "seeds": 2},
    )
    suite = ET.fromstring(junit_xml(result)).find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "2"
    failure = suite.findall("testcase")[0].find("failure")
    assert (
        failure.get("type") == "COLLAPSED" and "onset step 7" in failure.text and "predicted BG 97.0%" in failure.text
    )
    assert suite.findall("testcase")[1].find("failure") is None
    annotation = github_annotation(result, "/ws")
    assert annotation.startswith("::error file=configs/x.yaml,line=12,title=collapse-doctor gate: COLLAPSED::")
    assert github_annotation(GateResult("HEALTHY", True, 3, [], "x.yaml", [], 120, 1.0), None) is None


# --------------------------------------------------------------------------------------------------
# Real gates
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gate")
    good, bad = directory / "good.yaml", directory / "bad.yaml"
    good.write_text(git_history._old_config(git_history.GOOD_CHANGES))
    bad.write_text(git_history._old_config(git_history.BAD_CHANGES))
    return good, bad


def gate(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "collapse_doctor", "gate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_gate_fails_a_collapsing_config_with_junit_annotation_and_summary(configs, probe_cache, tmp_path):
    _, bad = configs
    summary = tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_WORKSPACE": str(bad.parent)}
    result = gate(
        str(bad),
        "--cache-dir",
        str(probe_cache),
        "--jobs",
        "1",  # in the command's process: the suite's workers keep the cores busy (tests/history/test_bisect.py)
        "--junit",
        str(tmp_path / "j.xml"),
        "--json",
        str(tmp_path / "g.json"),
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 1, result.stderr
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["label"] == "COLLAPSED" and len(data["seeds"]) == 2  # two of three agree: the third is not run
    assert data["steps_saved"] > 0 and all(s["steps_run"] < 120 for s in data["seeds"])  # early stop
    assert "::error file=bad.yaml,title=collapse-doctor gate: COLLAPSED::" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("collapse-doctor gate: COLLAPSED")
    assert ET.parse(tmp_path / "j.xml").getroot().find("testsuite").get("failures") == "2"
    assert "| 0 | COLLAPSED |" in summary.read_text()


def test_gate_passes_a_healthy_config_named_in_pyproject(configs, probe_cache, tmp_path):
    good, _ = configs
    (tmp_path / "pyproject.toml").write_text(f'[tool.collapse-doctor]\nconfig = "{good}"\njobs = 2\n')
    result = gate("--cache-dir", str(probe_cache), "--json", "-", cwd=tmp_path)
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["good"] is True and data["config"] == str(good)
    assert data["tool_table"] == str(tmp_path / "pyproject.toml")


def test_gate_bad_input_exits_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("training:\n  learning_rate: fast\n")
    result = gate(str(tmp_path / "bad.yaml"), cwd=tmp_path)
    assert result.returncode == 2 and "training.learning_rate" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_gate_against_a_good_config_classifies_by_the_primary_measure(tmp_path):
    from pathlib import Path

    from collapse_doctor.sweeps.gate import run_gate

    source = (Path(__file__).resolve().parents[2] / "fixtures" / "seed_old_2a50f2d.yaml").read_text()
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    for path, weight in ((good, 0.2), (bad, 2.0)):
        path.write_text(
            source.replace("loss_mode: 'stablemax'", f"loss_mode: 'weighted_stablemax'\n  bg_weight_cap: {weight}")
        )
    # 40 steps: the bad side collapses within a few (fg_auc 0.005-0.007 on this CPU) and the good side is
    # learning (0.09-0.12), so the decision has a wide margin; 60 steps cost twice as much for no more
    result = run_gate(bad, against=good, seeds=4, steps=40, jobs=1, cache_dir=tmp_path / "cache")
    assert result.good is False and result.exit_code == 1
    assert result.comparison["decision"] == "bad" and result.comparison["cliffs_delta"] >= 0.474
    assert "Mann-Whitney" in result.one_line()
    # Seeds as one vectorised batch (issue 15, item 3): its rows differ from separate probes' (shared
    # dropout stream, padded pairs), so it has its own cache entries, and its verdicts must agree.
    batched = run_gate(bad, against=good, seeds=4, steps=40, jobs=1, cache_dir=tmp_path / "cache", seed_batch=True)
    assert batched.seed_batch and "vectorised" in batched.one_line()
    assert not any(s.cached for s in batched.summaries)
    assert {s.key for s in batched.summaries}.isdisjoint(s.key for s in result.summaries)
    assert all(s.worker["seed_batch"] == [0, 1, 2, 3] for s in batched.summaries)
    # What the design guarantees (tests/robust.py): the decision, and each label whose run is far from a
    # threshold. At 60 steps a good seed ended at final FG 0.199 alone and 0.186 in the batch (learned level
    # 0.20), and on an AVX2-only CPU it was HEALTHY in the batch, so such a label is not asserted.
    assert batched.comparison["decision"] == result.comparison["decision"] == "bad"
    assert all(s.good is False for s in batched.summaries + result.summaries)
    assert not labels_far_from_boundaries(
        [s.label for s in batched.summaries],
        [s.final for s in batched.summaries],
        [s.label for s in result.summaries],
        [s.final for s in result.summaries],
    )
    assert not labels_far_from_boundaries(
        batched.comparison["reference_labels"],
        batched.comparison["reference_final"],
        result.comparison["reference_labels"],
        result.comparison["reference_final"],
    )
    assert not {"COLLAPSED", "FG_COLLAPSE", "DIVERGED"} & {
        *batched.comparison["reference_labels"],
        *result.comparison["reference_labels"],
    }
    with pytest.raises(Exception, match="needs --seeds 4"):
        run_gate(bad, against=good, seeds=3, steps=5, cache_dir=tmp_path / "cache")


def test_gate_against_without_a_regime_checks_its_input_before_calibrating(tmp_path):
    from collapse_doctor.errors import CollapseDoctorError
    from collapse_doctor.sweeps.gate import run_gate

    good, bad = ROOT / "fixtures" / "seed_old_2a50f2d.yaml", ROOT / "fixtures" / "seed_new_main.yaml"
    cache = tmp_path / "cache"
    with pytest.raises(CollapseDoctorError, match="needs --seeds 4"):
        run_gate(bad, against=good, seeds=3, auto_regime=True, cache_dir=cache)
    with pytest.raises(ConfigError, match="--seed-batch needs --regime"):
        run_gate(bad, against=good, seeds=4, auto_regime=True, seed_batch=True, cache_dir=cache)
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        run_gate(bad, against=tmp_path / "nowhere.yaml", seeds=4, auto_regime=True, cache_dir=cache)
    assert not (cache / "regimes").exists() and not list(cache.glob("*.json"))  # nothing was probed


def test_a_regime_in_the_tool_table_is_read_and_a_bad_one_named(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.collapse-doctor]\nregime = "warm-b8-p20"\n')
    assert find_tool_table(tmp_path).regime == "warm-b8-p20"
    (tmp_path / "r.yaml").write_text("probe:\n  steps: 30\n")
    (tmp_path / "pyproject.toml").write_text('[tool.collapse-doctor]\nregime = "r.yaml"\n')
    assert find_tool_table(tmp_path).regime == str(tmp_path / "r.yaml")
    (tmp_path / "pyproject.toml").write_text("[tool.collapse-doctor]\nregime = 3\n")
    with pytest.raises(ConfigError, match="regime"):
        find_tool_table(tmp_path)


@pytest.mark.slow
def test_junit_to_stdout_writes_no_file_named_dash(configs, probe_cache, tmp_path):
    _, bad = configs
    result = gate(str(bad), "--cache-dir", str(probe_cache), "--jobs", "1", "--junit", "-", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.lstrip().startswith("<?xml") and not (tmp_path / "-").exists()
    assert ET.fromstring(result.stdout.strip()).find("testsuite") is not None


def test_jobs_above_the_cpu_count_are_capped_with_a_note(capsys):
    from collapse_doctor.cli.app import worker_count

    cpus = os.cpu_count() or 1
    assert worker_count(cpus + 5) == cpus and "more than this machine's" in capsys.readouterr().err
    assert worker_count(cpus + 5, "ray") == cpus + 5 and worker_count(None) == cpus


@pytest.mark.parametrize(
    "table, message",
    [
        ("[tool.collapse-doctor.probe]\nsteps = -5\n", "[tool.collapse-doctor.probe] steps: must be >= 1"),
        ("[tool.collapse-doctor.verdict]\nlearned_acc = 'high'\n", "[tool.collapse-doctor.verdict] learned_acc:"),
        ("[tool.collapse-doctor.probe]\nstepz = 5\n", "[tool.collapse-doctor.probe] stepz: unknown key"),
    ],
)
def test_a_bad_value_in_the_tool_table_names_pyproject_and_its_key_not_set(tmp_path, table, message):
    """Issue 24, item 4: the user wrote it in pyproject.toml, not on the command line."""
    (tmp_path / "pyproject.toml").write_text("[tool.collapse-doctor]\n" + table)
    with pytest.raises(ConfigError) as caught:
        find_tool_table(tmp_path)
    text = str(caught.value)
    assert text.startswith(str(tmp_path / "pyproject.toml")) and message in text and "--set" not in text
