"""This machine's executor: probes in this process, or in spawned worker processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from collapse_doctor.sweeps.jobs import ProbeJob, execute, execute_seed_batch, failed_entry


class LocalExecutor:
    """This machine: in this process (jobs=1) or in spawned worker processes."""

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = jobs

    def run(self, tasks: list[tuple[int, ProbeJob, str]], metrics_dir: str) -> Iterator[tuple[int, dict]]:
        batched = [t for t in tasks if t[1].seed_batch is not None]
        if batched:
            yield from self._run_seed_batches(batched, metrics_dir)
            tasks = [t for t in tasks if t[1].seed_batch is None]
        if self.jobs <= 1:
            for i, job, key in tasks:
                yield i, execute(job, key, metrics_dir)
            return
        # spawn, not fork: a forked child would inherit torch's thread pools mid-state.
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(execute, job, key, metrics_dir): (i, job, key) for i, job, key in tasks}
            try:
                for future in as_completed(futures):
                    i, job, key = futures[future]
                    try:
                        yield i, future.result()
                    except BrokenProcessPool as exc:
                        yield i, failed_entry(job, key, f"worker process died: {exc}")
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    def _run_seed_batches(self, tasks: list[tuple[int, ProbeJob, str]], metrics_dir: str) -> Iterator[tuple[int, dict]]:
        """Jobs of one batch group as one seed batch (of the seeds still to run); groups in parallel
        worker processes when jobs > 1."""
        groups: dict[tuple, list[tuple[int, ProbeJob, str]]] = {}
        for task in tasks:
            groups.setdefault(task[1].batch_group(), []).append(task)
        if self.jobs <= 1 or len(groups) == 1:
            for group in groups.values():
                yield from zip([i for i, _, _ in group], execute_seed_batch([(j, k) for _, j, k in group], metrics_dir))
            return
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {
                pool.submit(execute_seed_batch, [(j, k) for _, j, k in group], metrics_dir): group
                for group in groups.values()
            }
            try:
                for future in as_completed(futures):
                    group = futures[future]
                    try:
                        yield from zip([i for i, _, _ in group], future.result())
                    except BrokenProcessPool as exc:
                        for i, job, key in group:
                            yield i, failed_entry(job, key, f"worker process died: {exc}")
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
