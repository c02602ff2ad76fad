"""bisect on real git histories (fixtures/git_history.py) with real probes of the tiny preset.

The collapse history holds two distinct resolved configs (good: weighted stablemax with background
weight 0.2; bad: weight 2.0), so one module-wide cache runs 6 probes for every test here and the
--minimize confirmation 3 more; everything else is read from the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collapse_doctor.config.diff import ABSENT, KeyChange
from collapse_doctor.sweeps.bisect import (
    BAD,
    GOOD,
    SKIP,
    SeedPolicy,
    apply_changes,
    binary_search,
    ddmin,
    decision_of_exit_status,
)
from collapse_doctor.sweeps.cache import ProbeCache

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fixtures"))
import git_history  # noqa: E402
from test_git import snapshot  # noqa: E402


# --------------------------------------------------------------------------------------------------
# The search itself, without torch or git
# --------------------------------------------------------------------------------------------------
def test_seed_policy_adds_seeds_while_they_disagree_and_decides_by_majority_at_the_cap():
    policy = SeedPolicy(first=3, cap=9)
    assert policy.decide(["COLLAPSED"] * 2) is None  # fewer than K
    assert policy.decide(["COLLAPSED", "FG_COLLAPSE", "DIVERGED"]) == BAD
    assert policy.decide(["HEALTHY", "TRANSIENT", "HEALTHY"]) == GOOD
    assert policy.decide(["HEALTHY", "COLLAPSED", "HEALTHY"]) is None  # disagreement: more seeds
    assert policy.decide(["HEALTHY", "INCONCLUSIVE", "HEALTHY"]) is None  # INCONCLUSIVE: more seeds
    assert policy.decide(["COLLAPSED"] * 5 + ["HEALTHY"] * 4) == BAD  # at the cap, strict majority
    assert policy.decide(["INCONCLUSIVE"] * 5 + ["HEALTHY"] * 4) == SKIP  # no majority: skipped
    assert policy.decide(["COLLAPSED"] * 4 + ["HEALTHY"] * 4 + ["INCONCLUSIVE"]) == SKIP


def test_binary_search_finds_the_first_bad_position_and_reports_skips_that_hide_it():
    truth = [GOOD, GOOD, GOOD, BAD, BAD, BAD, BAD, BAD, BAD]
    tested = []

    def classify(i):
        tested.append(i)
        return truth[i]

    assert binary_search(len(truth), classify)[:2] == (2, 3)
    assert len(tested) <= 3  # ceil(log2(7 candidates + 1))
    with_skip = [GOOD, GOOD, SKIP, BAD, BAD]
    assert binary_search(len(with_skip), lambda i: with_skip[i]) == (1, 3, [2])  # 2 or 3: ambiguous
    around_skip = [GOOD, SKIP, GOOD, BAD, BAD]
    assert binary_search(len(around_skip), lambda i: around_skip[i]) == (2, 3, [])


def test_ddmin_finds_a_one_minimal_failing_subset():
    calls = []

    def fails(subset):
        calls.append(tuple(subset))
        return {2, 5} <= set(subset)

    assert sorted(ddmin(list(range(8)), fails)) == [2, 5]
    assert ddmin([1, 2, 3], lambda s: None if 1 in s and 2 not in s else 3 in s) == [3]  # unresolved counts as passing


def test_apply_changes_sets_and_deletes_nested_keys():
    raw = {"training": {"bg_weight_cap": 0.2, "loo_training": {"enabled": False}}, "logging": {"every": 1}}
    changes = [
        KeyChange("training.bg_weight_cap", "training", 0.2, 2.0, "", True),
        KeyChange("logging.every", "logging", 1, ABSENT, "", False),
        KeyChange("data.augmentation.flip", "data", ABSENT, False, "", True),
    ]
    out = apply_changes(raw, changes)
    assert out == {
        "training": {"bg_weight_cap": 2.0, "loo_training": {"enabled": False}},
        "logging": {},
        "data": {"augmentation": {"flip": False}},
    }
    assert raw["training"]["bg_weight_cap"] == 0.2  # the input is not modified


def test_exit_status_follows_git_bisect_run():
    # 126 (cannot run) and 127 (not found) abort: the command did not judge the commit
    assert [decision_of_exit_status(s) for s in (0, 1, 2, 124, 125, 126, 127, 128, 255)] == [
        GOOD,
        BAD,
        BAD,
        BAD,
        SKIP,
        None,
        None,
        None,
        None,
    ]


# --------------------------------------------------------------------------------------------------
# Real histories, real probes
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cache_dir(probe_cache):
    return probe_cache


@pytest.fixture(scope="module")
def collapse_repo(tmp_path_factory):
    dest = tmp_path_factory.mktemp("collapse")
    return dest, git_history.build(dest, git_history.collapse_history())


def _default_sigint():
    # A child inherits an ignored SIGINT (some test-suite components ignore it in this process), and then
    # Ctrl-C never reaches it; a user's shell starts the tool with the default disposition.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


# The settings these tests were built on: the quick regime, verdict classes, 3 seeds. Without flags bisect
# calibrates first and classifies by measure (test_bisect_auto.py runs that).
QUICK_BY_VERDICT = {"--regime": "quick", "--by": "verdict", "--seeds": "3"}


def bisect(*args, cwd, cache_dir=None, env=None):
    # --jobs 1: the probes run in the command's own process. Under make test the suite's two workers keep
    # both cores busy already, so worker processes of a sweep would add only their start-up (about 4 s of
    # CPU each). test_bisect_auto.py runs bisect with the default --jobs, on worker processes.
    extra = ["--cache-dir", str(cache_dir), "--jobs", "1"] if cache_dir is not None else []
    if "--cmd" not in args:
        extra += [item for flag, value in QUICK_BY_VERDICT.items() if flag not in args for item in (flag, value)]
    return subprocess.run(
        [sys.executable, "-m", "collapse_doctor", "bisect", *args, *extra],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        preexec_fn=_default_sigint,
        timeout=1800,
    )


@pytest.fixture(scope="module")
def found(collapse_repo, cache_dir, tmp_path_factory):
    repo, hashes = collapse_repo
    before = snapshot(repo)
    out = tmp_path_factory.mktemp("out") / "bisect.json"
    result = bisect("--from", hashes[0][:7], "--json", str(out), cwd=repo, cache_dir=cache_dir)
    return result, json.loads(out.read_text()), before


@pytest.mark.slow
def test_bisect_names_the_commit_that_changed_the_class_weight(found, collapse_repo):
    result, data, _ = found
    repo, hashes = collapse_repo
    assert result.returncode == 0, result.stderr
    assert data["outcome"] == "found" and data["first_bad"] == hashes[5]
    assert data["parent"]["hexsha"] == hashes[4]
    assert (
        data["first_bad_info"]["subject"] == "use the reference's class weights"
        and data["first_bad_info"]["author"] == "Ada Example <ada@example.org>"
    )
    changes = {c["key"]: c for c in data["changes"]}
    assert set(changes) == {"training.bg_weight_cap", "data.num_workers"}
    assert (changes["training.bg_weight_cap"]["old"], changes["training.bg_weight_cap"]["new"]) == (0.2, 2.0)
    evidence = data["evidence"]
    assert (
        evidence["bad_side"]["bad"],
        len(evidence["bad_side"]["seeds"]),
        evidence["good_side"]["bad"],
        len(evidence["good_side"]["seeds"]),
    ) == (3, 3, 0, 3)
    assert evidence["p_value"] == pytest.approx(0.1)
    assert [s["hexsha"] for s in data["skipped"]] == [hashes[2]] and "training.learning_rate" in data["skipped"][0][
        "problem"
    ]
    assert data["probes"]["run"] + data["probes"]["cached"] == 6  # two configs x 3 seeds; the other commits share them
    assert "first bad commit" in result.stdout and "Fisher" in result.stdout and "invisible" in result.stdout


@pytest.mark.slow
def test_the_bad_config_collapses_through_training_not_at_step_zero(found, cache_dir):
    _, data, _ = found
    cache = ProbeCache(cache_dir)
    for seed in data["evidence"]["bad_side"]["seeds"]:
        entry = cache.get(seed["key"])
        assert entry["label"] == "COLLAPSED" and entry["onset_step"] >= 1
        assert entry["series"][0]["pred_bg_share"] < 0.9  # not all-background before training
    for seed in data["evidence"]["good_side"]["seeds"]:
        assert cache.get(seed["key"])["label"] in ("HEALTHY", "TRANSIENT")


@pytest.mark.slow
def test_bisect_leaves_the_repository_untouched(found, collapse_repo):
    _, _, before = found
    assert snapshot(collapse_repo[0]) == before


@pytest.mark.slow
def test_a_rerun_probes_nothing_and_a_partial_checkout_works(found, collapse_repo, cache_dir, tmp_path):
    repo, hashes = collapse_repo
    clone = tmp_path / "partial"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(repo), str(clone)], check=True)
    before = snapshot(clone)
    result = bisect("--from", hashes[0], "--to", "origin/main", "--json", "-", cwd=clone, cache_dir=cache_dir)
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["first_bad"] == hashes[5]
    assert data["probes"]["run"] == 0 and data["probes"]["cached"] == 6
    assert not (clone / "configs").exists() and snapshot(clone) == before


@pytest.mark.slow
def test_minimize_keeps_only_the_change_that_collapses_and_confirms_it_on_fresh_seeds(found, collapse_repo, cache_dir):
    repo, hashes = collapse_repo
    result = bisect("--from", hashes[0], "--minimize", "--json", "-", cwd=repo, cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr
    m = json.loads(result.stdout)["minimize"]
    assert [c["key"] for c in m["changes"]] == ["training.bg_weight_cap"]
    assert m["confirmed"] is True
    assert [s["seed"] for s in m["confirmation"]["seeds"]] == [3, 4, 5]  # seeds no earlier judgement used
    assert {tuple(t["keys"]): t["decision"] for t in m["trials"]} == {
        ("data.num_workers",): "good",
        ("training.bg_weight_cap",): "bad",
    }


@pytest.mark.slow
def test_scan_lists_every_transition_of_a_bad_good_bad_history(cache_dir, tmp_path):
    hashes = git_history.build(tmp_path / "flip", git_history.flip_history())
    result = bisect("--from", hashes[0], "--scan", "--json", "-", cwd=tmp_path / "flip", cache_dir=cache_dir)
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["outcome"] == "scanned"
    assert [(t["after"], t["direction"]) for t in data["transitions"]] == [
        (hashes[1], "good->bad"),
        (hashes[2], "bad->good"),
        (hashes[3], "good->bad"),
    ]
    assert [c["key"] for c in data["transitions"][1]["changes"]] == ["training.bg_weight_cap"]
    assert data["first_bad"] == hashes[1]


@pytest.mark.slow
def test_an_endpoint_that_surprises_stops_the_bisect_with_json(found, collapse_repo, cache_dir, tmp_path):
    repo, hashes = collapse_repo
    out = tmp_path / "r.json"
    result = bisect("--from", hashes[5], "--to", hashes[7], "--json", str(out), cwd=repo, cache_dir=cache_dir)
    data = json.loads(out.read_text())
    assert result.returncode == 1
    assert data["outcome"] == "good_endpoint_bad" and data["first_bad"] is None
    assert "good endpoint" in result.stdout and data["probes"]["run"] == 0


def test_bad_input_is_one_line_with_exit_2_and_json(collapse_repo, tmp_path):
    repo, hashes = collapse_repo
    out = tmp_path / "r.json"
    result = bisect("--from", "no-such-rev", "--json", str(out), cwd=repo)
    assert result.returncode == 2 and "no-such-rev" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert json.loads(out.read_text())["outcome"] == "error"
    result = bisect("--from", hashes[3], "--to", hashes[1], cwd=repo)
    assert result.returncode == 2 and "not an ancestor" in result.stderr


def test_a_missing_config_path_lists_the_candidate_yaml_files(tmp_path):
    repo = tmp_path / "seed"
    hashes = git_history.build(repo, git_history.seed_history())
    result = bisect("--from", hashes[0], "--to", hashes[3], cwd=repo)  # pyproject.toml comes later
    assert result.returncode == 2 and "--config" in result.stderr and "configs/rlan_stable.yaml" in result.stderr


# --------------------------------------------------------------------------------------------------
# --cmd: the user's own command in a temporary checkout
# --------------------------------------------------------------------------------------------------
JUDGE = (
    "python -c \"import sys, runpy; sys.exit({'good': 0, 'skip': 125, 'bad': "
    "1}[runpy.run_path('src/solver.py')['STATE']])\""
)


@pytest.fixture(scope="module")
def code_repo(tmp_path_factory):
    dest = tmp_path_factory.mktemp("code")
    return dest, git_history.build(dest, git_history.code_history())


def clean_env(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    return temp, {**os.environ, "TMPDIR": str(temp)}


def test_cmd_judges_each_commit_in_a_temporary_checkout(code_repo, tmp_path):
    repo, hashes = code_repo
    temp, env = clean_env(tmp_path)
    before = snapshot(repo)
    result = bisect("--from", hashes[0], "--cmd", JUDGE, "--json", "-", cwd=repo, env=env)
    data = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert data["first_bad"] == hashes[4] and data["judge"] == "cmd"
    assert data["files_changed"] == ["src/solver.py"]
    decisions = {c["hexsha"]: c["decision"] for c in data["commits"]}
    assert decisions[hashes[2]] == "skip" and decisions[hashes[3]] == "good"
    assert list(temp.iterdir()) == [] and snapshot(repo) == before


def test_cmd_exit_128_or_more_aborts_and_cleans_up(code_repo, tmp_path):
    repo, hashes = code_repo
    temp, env = clean_env(tmp_path)
    result = bisect("--from", hashes[0], "--cmd", "exit 200", "--json", "-", cwd=repo, env=env)
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["outcome"] == "aborted" and "200" in data["message"]
    assert list(temp.iterdir()) == []


def test_ctrl_c_during_cmd_removes_the_checkout_and_writes_json(code_repo, tmp_path):
    repo, hashes = code_repo
    temp, env = clean_env(tmp_path)
    before = snapshot(repo)
    out = tmp_path / "r.json"
    result = bisect("--from", hashes[0], "--cmd", "kill -INT $PPID; sleep 5", "--json", str(out), cwd=repo, env=env)
    assert result.returncode == 130 and "Traceback" not in result.stderr
    assert json.loads(out.read_text())["outcome"] == "interrupted"
    assert list(temp.iterdir()) == [] and snapshot(repo) == before


def test_bisect_by_measure_refuses_too_few_seeds(collapse_repo):
    repo, hashes = collapse_repo
    result = bisect("--from", hashes[0][:7], "--by", "measure", "--seeds", "3", cwd=repo)
    assert result.returncode == 2 and "needs --seeds 4" in result.stderr and "Traceback" not in result.stderr


def test_an_unreadable_parent_config_is_named_not_reported_as_no_change():
    from collapse_doctor.cli.history import _config_problem
    from collapse_doctor.sweeps.bisect import CommitConfig
    from collapse_doctor.sweeps.gitrepo import CommitInfo

    info = CommitInfo("a" * 40, "aaaaaaa", "2025-01-01", "someone", "break the yaml")
    assert "malformed" in _config_problem(CommitConfig(info, "ok", None, "model: [unclosed\n"))
    assert _config_problem(CommitConfig(info, "missing", "no file configs/x.yaml", None)) == "no file configs/x.yaml"
    assert _config_problem(CommitConfig(info, "ok", None, "model:\n  hidden_dim: 64\n")) is None


def test_bisect_notes_what_a_commit_called_good_could_have_missed(capsys):
    """The note under bisect's table names the fewest seeds any commit called good had, against the good
    endpoint's; no note when no commit but the good endpoint was called good."""
    from types import SimpleNamespace

    from collapse_doctor.cli.app import out
    from collapse_doctor.cli.history import _render_missed

    def judged(seeds: int):
        return SimpleNamespace(summaries=[object()] * seeds)

    result = SimpleNamespace(
        classes={0: "good", 1: "good", 2: "good", 3: "collapsed"},
        judgements={0: judged(4), 1: judged(9), 2: judged(5), 3: judged(4)},
    )
    _render_missed(out, result)
    assert "'good' at 5 v 4 seeds can miss a regression" in capsys.readouterr().out
    result.classes = {0: "good", 3: "collapsed"}
    _render_missed(out, result)
    assert capsys.readouterr().out == ""
