"""The local executor's worker processes: started once per sweep and reused by every round, gone after close."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collapse_doctor.sweeps.executors import LocalExecutor, sweep_executor
from collapse_doctor.sweeps.jobs import ProbeJob
from collapse_doctor.sweeps.runner import run_jobs

OLD = str(Path(__file__).resolve().parents[2] / "fixtures" / "seed_old_2a50f2d.yaml")


def _jobs(seeds):
    return [
        ProbeJob(OLD, ("probe.steps=2", f"probe.seed={s}"), "tiny", "arc-agi-1", None, "cpu", f"s{s}") for s in seeds
    ]


@pytest.mark.slow
def test_every_round_of_a_sweep_runs_in_the_same_worker_processes_which_exit_on_close(tmp_path):
    with LocalExecutor(jobs=2) as runner:
        first = run_jobs(_jobs([0, 1]), cache_dir=tmp_path, executor=runner)
        second = run_jobs(_jobs([2, 3]), cache_dir=tmp_path, executor=runner)
        third = run_jobs(_jobs([4]), cache_dir=tmp_path, executor=runner)
        assert runner.pools_started == 1
    pids = {s.worker["pid"] for s in first + second + third}
    assert len(pids) <= 2 and os.getpid() not in pids  # two workers served three rounds
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # close() let them exit and reaped them
            os.kill(pid, 0)


def test_a_sweep_without_an_executor_gets_its_own_and_a_callers_executor_is_left_open():
    with sweep_executor(None, 2) as own:
        assert isinstance(own, LocalExecutor) and own.jobs == 2
    mine = LocalExecutor(jobs=1)
    with sweep_executor(mine, 2) as given:
        assert given is mine
