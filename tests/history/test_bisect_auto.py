"""The headline command as a user types it: `bisect --from GOOD` with no regime, on the seed's history
(fixtures/git_history.py --history seed). It calibrates on the endpoints first (sweeps/autoregime.py),
chooses on the good side before the bad side runs, trains phase 1 once per seed for every probe of the
sweep, names the first collapsed commit, and reuses its choice on the next run. On a history built to have
both (--history degrade), it names the collapse and, before it, the commit that degrades."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Each module fixture trains for minutes: the whole file is left out of make test-fast.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fixtures"))
import git_history  # noqa: E402


@pytest.fixture(scope="module")
def headline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("headline")
    repo = tmp / "seed"
    hashes = git_history.build(repo, git_history.seed_history())
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "xdg")}  # phase-1 checkpoints and regimes land here

    def run(out: str):
        return subprocess.run(
            [sys.executable, "-m", "collapse_doctor", "bisect", "--from", hashes[0][:7], "--json", str(tmp / out)],
            capture_output=True,
            text=True,
            cwd=repo,
            env=env,
            timeout=1800,
        )

    first = run("first.json")
    second = run("second.json")
    return tmp, hashes, first, second, env


@pytest.fixture(scope="module")
def degrade(headline):
    """The degrade history shares the headline's good endpoint, so its phase 1 and the good endpoint's probes
    come from the cache. The regime and the measure are named here, as a user who knows them would (the
    headline's run tests the defaults that choose them)."""
    tmp, *_, env = headline
    repo = tmp / "degrade"
    hashes = git_history.build(repo, git_history.degrade_history())
    args = ["--from", hashes[0][:7], "--regime", "warm-b8-p10", "--by", "measure", "--json", str(tmp / "d.json")]
    result = subprocess.run(
        [sys.executable, "-m", "collapse_doctor", "bisect", *args],
        capture_output=True,
        text=True,
        cwd=repo,
        env=env,
        timeout=1800,
    )
    return hashes, result, json.loads((tmp / "d.json").read_text())


def test_bisect_with_no_flags_calibrates_then_names_the_first_collapse(headline):
    tmp, hashes, first, *_ = headline
    assert first.returncode == 0, first.stdout + first.stderr
    data = json.loads((tmp / "first.json").read_text())
    assert data["outcome"] == "found" and data["first_bad_info"]["subject"] == "add HyperLoRA"
    assert data["regime"]["cached"] is False and data["regime"]["regime"].startswith("warm-b8-p")
    assert data["ran"]["by"] == "measure" and data["evidence"]["measure"]["p"] < 0.05
    assert data["classes"][hashes[0]] == "good" and data["classes"][hashes[1]] == "collapsed"
    assert "no --regime given: using 'warm-b8-p" in first.stdout
    # stdout is not a terminal here: a plain line per finished probe on stderr
    assert sum(1 for line in first.stderr.splitlines() if line.startswith("bisect: ")) >= 8
    # one pool of worker processes served the calibration and every round of the search
    pids = {worker["pid"] for worker in _workers(data)}
    assert 0 < len(pids) <= (os.cpu_count() or 1) and os.getpid() not in pids


def _workers(node):
    """Every probe's worker record in a result JSON."""
    if isinstance(node, dict):
        if isinstance(node.get("worker"), dict) and "pid" in node["worker"]:
            yield node["worker"]
        for value in node.values():
            yield from _workers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _workers(value)


def test_self_calibration_judges_the_good_side_before_probing_the_bad_side(headline):
    tmp, *_ = headline
    table = json.loads((tmp / "first.json").read_text())["regime"]["calibration"]
    for regime in table["regimes"]:
        assert regime["bad"] == [] or regime["usable"], regime["regime"]  # no bad probe where good did not learn
    chosen = [r for r in table["regimes"] if r["regime"] == table["chosen"]][0]
    assert chosen["usable"] and chosen["separates"]


def test_phase_one_is_trained_once_per_seed_across_the_sweep_and_the_choice_is_reused(headline):
    tmp, _, first, second, _ = headline
    checkpoints = sorted((tmp / "xdg" / "collapse-doctor" / "cache" / "warm").glob("*.pt"))
    assert len([p for p in checkpoints if not p.name.endswith(".partial.pt")]) == 4  # seeds 0-3, every probe
    assert second.returncode == 0
    again = json.loads((tmp / "second.json").read_text())
    assert again["regime"]["cached"] is True and again["probes"]["run"] == 0
    assert again["first_bad"] == json.loads((tmp / "first.json").read_text())["first_bad"]


def test_collapse_and_an_earlier_degradation_are_named_apart(degrade):
    hashes, result, data = degrade
    assert result.returncode == 0, result.stdout + result.stderr
    assert data["outcome"] == "found" and data["first_bad_info"]["subject"] == "add HyperLoRA"
    assert data["first_degraded"]["subject"] == "raise the learning rate to 5e-3"
    assert [data["classes"].get(h) for h in hashes[0::2]] == ["good", "degraded", "collapsed"]
    assert data["ran"]["by"] == "measure" and "Cliff's delta >= 0.474" in data["ran"]["rule"]
    evidence = data["degraded_evidence"]["measure"]
    assert evidence["p"] < 0.05 and evidence["cliffs_delta"] >= 0.474 and evidence["worse"] is True
    # the collapse is answered first, then the degradation
    out = result.stdout
    assert out.index("first collapsed commit") < out.index("first degraded commit")
