"""A cache entry or warm-start checkpoint is served only to the code that could have written it (issue 24,
item 5): the key holds the package's source and torch version and the data's content, not its name; the
key is stored in the entry and checked; phase-1 checkpoints live under --cache-dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from collapse_doctor.config import load_config
from collapse_doctor.experiments.identity import code_fingerprint, data_fingerprint, probe_key
from collapse_doctor.sweeps.cache import ProbeCache

ROOT = Path(__file__).resolve().parents[2]
OLD = ROOT / "fixtures" / "seed_old_2a50f2d.yaml"


def test_the_code_fingerprint_moves_with_a_source_edit_and_with_torch(tmp_path):
    copy = tmp_path / "collapse_doctor"
    shutil.copytree(ROOT / "collapse_doctor", copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_fingerprint(copy)
    assert before == code_fingerprint(copy) and code_fingerprint(copy, "9.9.9") != before
    model = copy / "model" / "solver.py"
    model.write_text(model.read_text() + "\n# a comment is a change of code\n")
    assert code_fingerprint(copy) != before


def test_the_key_holds_the_data_content_not_its_name(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    task = {"train": [{"input": [[1, 0]], "output": [[0, 1]]}], "test": [{"input": [[1, 1]], "output": [[1, 1]]}]}
    (tasks / "a.json").write_text(json.dumps(task))
    config = load_config(OLD).config
    before = probe_key(config, "tiny", str(tasks), None, "cpu")
    assert before == probe_key(config, "tiny", str(tasks), None, "cpu")
    task["train"][0]["output"] = [[1, 1]]
    (tasks / "a.json").write_text(json.dumps(task) + " ")  # other content (and another size)
    assert data_fingerprint(str(tasks)) != data_fingerprint("arc-agi-1")
    assert probe_key(config, "tiny", str(tasks), None, "cpu") != before


def test_an_entry_stored_under_another_key_is_set_aside_not_served(tmp_path, capsys):
    cache = ProbeCache(tmp_path)
    entry = {
        "label": "HEALTHY",
        "seed": 0,
        "final": {},
        "reasons": [],
        "seconds": 1.0,
        "key": "b" * 32,
        "metrics": "m",
        "series": [],
        "events": [],
        "onset_step": None,
    }
    cache.put("b" * 32, entry)
    assert cache.get("b" * 32)["label"] == "HEALTHY"
    shutil.copy(tmp_path / f"{'b' * 32}.json", tmp_path / f"{'a' * 32}.json")  # e.g. a cache copied by hand
    assert cache.get("a" * 32) is None and "not " + "a" * 32 in capsys.readouterr().err


def test_warm_start_checkpoints_live_under_the_cache_dir(tmp_path, monkeypatch):
    from collapse_doctor.sweeps.jobs import ProbeJob
    from collapse_doctor.sweeps.runner import run_jobs

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user"))
    overrides = (
        "probe.warm_start_steps=2",
        "probe.warm_start_until_learned=false",
        "probe.steps=1",
        "probe.early_stop_after=null",
        "probe.seed=0",
    )
    job = ProbeJob(str(OLD), overrides, "tiny", "arc-agi-1", None, "cpu", "warm")
    (summary,) = run_jobs([job], cache_dir=tmp_path / "cache")
    assert summary.warm_start is not None
    assert list((tmp_path / "cache" / "warm").glob("*.pt")) and not (tmp_path / "user").exists()


def test_a_worker_that_imports_edited_code_refuses_the_job(tmp_path, monkeypatch):
    """A source file edited while a sweep runs: the next spawned worker imports it. Its result would be cached
    under the key of the code that started the sweep (and its warm-start checkpoint under a key of its own),
    so the worker refuses the job and the sweep stops, caching nothing for it."""
    import collapse_doctor
    from collapse_doctor.sweeps.jobs import CodeChanged, ProbeJob
    from collapse_doctor.sweeps.runner import run_jobs

    edited = tmp_path / "edited"
    shutil.copytree(Path(collapse_doctor.__file__).parent, edited / "collapse_doctor")
    with (edited / "collapse_doctor" / "encoding.py").open("a") as handle:
        handle.write("\n# an edit made while the sweep runs\n")
    # spawn hands the parent's sys.path to its workers: with the copy first, a worker imports the edited code
    monkeypatch.syspath_prepend(str(edited))
    jobs = [
        ProbeJob(str(OLD), ("probe.steps=1", f"probe.seed={seed}"), "tiny", "arc-agi-1", None, "cpu") for seed in (0, 1)
    ]
    with pytest.raises(CodeChanged, match="source changed on disk while this sweep ran"):
        run_jobs(jobs, jobs=2, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.json"))
