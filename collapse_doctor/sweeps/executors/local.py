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
    """This machine: in this process (jobs=1) or in spawned worker processes.

    The workers outlive one `run`: a sweep runs its probes in rounds (bisect: one per commit tested), and
    each new worker pays torch's import and start-up again (about 4 s of CPU on a 2-core laptop). So the
    pool is started on the first parallel run and kept until `close()` (or the end of a `with` block); a
    Ctrl-C or a worker that died discards it, and the next run starts a fresh one."""

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = jobs
        self.stopped = 0  # probes running when the last run was interrupted (they were stopped, not finished)
        self.pools_started = 0  # for the record: a sweep should start one
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Let the workers finish and exit (they are idle between runs)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _workers(self) -> ProcessPoolExecutor:
        # spawn, not fork: a forked child would inherit torch's thread pools mid-state.
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"))
            self.pools_started += 1
        return self._pool

    def run(self, tasks: list[Task], metrics_dir: str) -> Iterator[tuple[int, dict]]:
        units = units_of(tasks)
        self.stopped = 0
        if self.jobs <= 1:
            for unit in units:
                self.stopped = len(unit)  # if Ctrl-C comes now, this unit is the one stopped
                results = run_unit(unit, metrics_dir)
                self.stopped = 0
                yield from zip([i for i, _, _ in unit], results)
            return
        if not units:
            return
        # At most `jobs` units are handed to the pool at a time, so on Ctrl-C nothing waits in its queue to
        # start afterwards.
        pool = self._workers()
        waiting = list(reversed(units))
        running: dict = {}
        broken = False
        try:
            while waiting or running:
                while waiting and len(running) < self.jobs:
                    unit = waiting.pop()
                    running[pool.submit(run_unit, unit, metrics_dir)] = unit
                future = next(as_completed(running))
                unit = running.pop(future)
                try:
                    entries = future.result()
                except BrokenProcessPool as exc:
                    broken = True
                    entries = [failed_entry(job, key, f"worker process died: {exc}") for _, job, key in unit]
                yield from zip([i for i, _, _ in unit], entries)
        except BaseException:
            self.stopped = sum(len(u) for f, u in running.items() if not f.done())
            self._pool = None
            _stop_workers(pool)
            raise
        if broken:  # a broken pool takes no more work: the next run starts another
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's running probes now (Ctrl-C): shutdown() alone waits for them to finish."""
    if hasattr(pool, "terminate_workers"):  # Python 3.14
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
