"""This machine's executor: probes in this process, or in spawned worker processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from collapse_doctor.sweeps.jobs import ProbeJob, execute, execute_seed_batch, failed_entry

Task = tuple[int, ProbeJob, str]  # (index in the caller's list, the job, its cache key)


def run_unit(unit: list[Task], metrics_dir: str) -> list[dict]:
    """One unit of work, in this process or a worker: a lone probe, or the jobs of one seed batch."""
    if unit[0][1].seed_batch is None:
        (_, job, key), *_ = unit
        return [execute(job, key, metrics_dir)]
    return execute_seed_batch([(job, key) for _, job, key in unit], metrics_dir)


def units_of(tasks: list[Task]) -> list[list[Task]]:
    """Each probe its own unit, except jobs that carry seed_batch: one unit per batch group."""
    units, groups = [], {}
    for task in tasks:
        if task[1].seed_batch is None:
            units.append([task])
        elif task[1].batch_group() in groups:
            groups[task[1].batch_group()].append(task)
        else:
            groups[task[1].batch_group()] = unit = [task]
            units.append(unit)
    return units


class LocalExecutor:
    """This machine: in this process (jobs=1) or in spawned worker processes."""

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = jobs

    def run(self, tasks: list[Task], metrics_dir: str) -> Iterator[tuple[int, dict]]:
        units = units_of(tasks)
        if self.jobs <= 1:
            for unit in units:
                yield from zip([i for i, _, _ in unit], run_unit(unit, metrics_dir))
            return
        # spawn, not fork: a forked child would inherit torch's thread pools mid-state.
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_unit, unit, metrics_dir): unit for unit in units}
            try:
                for future in as_completed(futures):
                    unit = futures[future]
                    try:
                        yield from zip([i for i, _, _ in unit], future.result())
                    except BrokenProcessPool as exc:
                        for i, job, key in unit:
                            yield i, failed_entry(job, key, f"worker process died: {exc}")
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
