"""The Ray executor against a real local Ray instance (skipped where the [ray] extra is not installed;
.ci/run installs it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from collapse_doctor.sweeps.ablate import run_ablation
from collapse_doctor.sweeps.executors import LocalExecutor
from collapse_doctor.sweeps.jobs import FAILED, ProbeJob
from collapse_doctor.sweeps.runner import run_jobs

ONLY = ["base + HyperLoRA", "base + bg_bias"]  # with their reference "base": 3 variants


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _ablate(executor, cache_dir):
    # One seed per variant: equality is asserted probe by probe, so more seeds would repeat the same check
    return run_ablation(None, seeds=[0], steps=8, only=ONLY, cache_dir=cache_dir, executor=executor)


@pytest.mark.slow
def test_an_ablation_on_ray_equals_the_local_one_and_records_its_workers(local_ray, tmp_path):
    from collapse_doctor.sweeps.executors.ray import RayExecutor

    on_ray = _ablate(RayExecutor(), tmp_path / "ray-cache")
    local = _ablate(LocalExecutor(jobs=1), tmp_path / "local-cache")
    assert (
        [v.name for v in on_ray.variants]
        == [v.name for v in local.variants]
        == ["base", "base + HyperLoRA", "base + bg_bias"]
    )
    for r, loc in zip(on_ray.variants, local.variants):
        for a, b in zip(r.seeds, loc.seeds):
            assert (a.seed, a.label, a.onset_step, a.series) == (b.seed, b.label, b.onset_step, b.series), r.name
            assert a.worker["executor"] == "ray" and a.worker["node_id"] and a.worker["worker_id"]
            assert b.worker["executor"] == "local"
    node = local_ray.get_runtime_context().get_node_id()
    assert {s.worker["node_id"] for v in on_ray.variants for s in v.seeds} == {node}
    rerun = _ablate(RayExecutor(), tmp_path / "ray-cache")  # the cache holds Ray's results like local ones
    assert all(s.cached for v in rerun.variants for s in v.seeds)


def test_a_failing_task_is_retried_once_then_reported_as_failed_not_cached(local_ray, tmp_path):
    from collapse_doctor.sweeps.executors.ray import RayExecutor

    job = ProbeJob(None, ("probe.steps=2",), "tiny", str(tmp_path / "no-such-data"), None, "cpu", "broken")
    [summary] = run_jobs([job], cache_dir=tmp_path / "cache", executor=RayExecutor())
    assert summary.label == FAILED and summary.good is None
    assert "retry" in summary.reasons[0] and "no-such-data" in summary.reasons[0]
    assert not list((tmp_path / "cache").glob("*.json"))  # a failure is never cached


def test_ctrl_c_cancels_the_tasks_still_running(local_ray, tmp_path, monkeypatch):
    """A Ctrl-C while probes run on the cluster cancels them: nothing keeps running, nothing is cached.

    The interrupt is raised where a Ctrl-C lands in practice, inside the executor's `ray.wait` loop,
    once the two probes hold the cluster's CPUs; Ray itself runs for real. The earlier form of this
    test sent `_thread.interrupt_main()` from a thread, which does nothing when SIGINT is ignored, and a
    suite started in the background (`make test &`) ignores it: that is why it hung (600 s in one
    fresh-clone run this session; most likely also the 14 minutes in issue 16's report)."""
    import faulthandler
    import time

    from collapse_doctor.sweeps.executors.ray import RayExecutor

    total = local_ray.cluster_resources()["CPU"]
    jobs = [
        ProbeJob(
            None,
            ("probe.steps=5000", "probe.early_stop_after=null", f"probe.seed={s}"),
            "tiny",
            "arc-agi-1",
            None,
            "cpu",
            "long",
        )
        for s in range(2)
    ]
    real_wait = local_ray.wait
    deadline = time.monotonic() + 180
    pressed = []

    def wait_then_ctrl_c(refs, **kwargs):
        if local_ray.available_resources().get("CPU", 0) < total or time.monotonic() > deadline:
            pressed.append(local_ray.available_resources().get("CPU", 0))
            raise KeyboardInterrupt
        return real_wait(refs, **kwargs)

    monkeypatch.setattr(local_ray, "wait", wait_then_ctrl_c)
    faulthandler.dump_traceback_later(300, exit=True)  # a hang fails the run with a stack dump instead of blocking CI
    try:
        with pytest.raises(KeyboardInterrupt):
            run_jobs(jobs, cache_dir=tmp_path / "cache", executor=RayExecutor())
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert pressed and pressed[0] < total  # the interrupt came while the probes held the CPUs
    deadline = time.monotonic() + 60
    while local_ray.available_resources().get("CPU", 0) < total and time.monotonic() < deadline:
        time.sleep(0.5)
    assert local_ray.available_resources().get("CPU", 0) == total  # nothing keeps running on the cluster
    assert not list((tmp_path / "cache").glob("*.json"))


def test_asking_for_ray_without_it_installed_says_how_to_install():
    code = (
        "import sys; sys.modules['ray'] = None\nfrom collapse_doctor.cli import main\nsys.argv = "
        "['collapse-doctor', 'ablate', '--executor', 'ray', '--only', 'base']\nmain()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (
        result.returncode == 2
        and "pip install 'collapse-doctor[ray]'" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_an_address_where_nothing_listens_fails_fast_naming_it():
    import time

    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "collapse_doctor",
            "ablate",
            "--executor",
            "ray",
            "--ray-address",
            "127.0.0.1:1",
            "--only",
            "base",
            "--seeds",
            "1",
            "--steps",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - start < 60
