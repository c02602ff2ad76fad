"""Running a job list: cached summaries at once, the rest by an executor, each result cached as soon as
it arrives (whoever ran it), so an interrupted sweep resumes from the cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from collapse_doctor.sweeps.cache import ProbeCache
from collapse_doctor.sweeps.executors import Executor, sweep_executor
from collapse_doctor.sweeps.jobs import FAILED, ProbeJob, ProbeSummary

ProgressCallback = Callable[[int, int, ProbeSummary], None]  # (done, total, the summary that just finished)


@dataclass
class Interruption:
    """What a sweep interrupted by Ctrl-C kept: the CLI says it (cli/app.py), so the message is the truth."""

    cached_before: int  # served from the cache when the sweep started
    finished: int  # ran to the end in this run, each cached as it arrived
    stopped: int  # running when interrupted, stopped before the end (their rows so far are on disk)
    never_started: int

    def text(self) -> str:
        return (
            f"{self.finished} probe{'s' * (self.finished != 1)} finished in this run and "
            f"{'are' if self.finished != 1 else 'is'} cached ({self.cached_before} were cached before); "
            f"{self.stopped} running {'were' if self.stopped != 1 else 'was'} stopped and {self.never_started} never "
            "started"
        )


last_interruption: Interruption | None = None  # the latest run_jobs that Ctrl-C stopped, in this process


def run_jobs(
    jobs_list: list[ProbeJob],
    *,
    jobs: int = 1,
    cache_dir=None,
    progress: ProgressCallback | None = None,
    executor: Executor | None = None,
) -> list[ProbeSummary]:
    """Summaries in job order: cached ones at once, the rest run by the executor (default: local, `jobs`
    worker processes for this call alone). Every result is cached as soon as it arrives, whoever ran it."""
    cache = ProbeCache(cache_dir)
    metrics_dir = str(cache.directory / "metrics")
    keys = [job.key() for job in jobs_list]
    results: list[ProbeSummary | None] = [None] * len(jobs_list)
    done = 0

    def finish(i: int, summary: ProbeSummary) -> None:
        nonlocal done
        summary.tag = jobs_list[i].tag
        results[i] = summary
        done += 1
        if progress is not None:
            progress(done, len(jobs_list), summary)

    first_of: dict[str, int] = {}  # the same probe asked twice (e.g. identical variants) runs once
    pending, duplicates = [], []
    for i, key in enumerate(keys):
        entry = cache.get(key)
        if entry is not None:
            finish(i, ProbeSummary.from_json(entry, cached=True))
        elif key in first_of:
            duplicates.append(i)
        else:
            first_of[key] = i
            pending.append(i)
    cached_before, arrived = done, 0
    with sweep_executor(executor, jobs) as runner:
        try:
            for i, entry in runner.run([(i, jobs_list[i], keys[i]) for i in pending], metrics_dir):
                if entry["label"] != FAILED:
                    cache.put(keys[i], entry)
                arrived += 1
                finish(i, ProbeSummary.from_json(entry))
        except KeyboardInterrupt:
            global last_interruption
            stopped = getattr(runner, "stopped", 0)
            last_interruption = Interruption(cached_before, arrived, stopped, len(pending) - arrived - stopped)
            raise
    for i in duplicates:
        source = results[first_of[keys[i]]]
        finish(i, ProbeSummary.from_json(source.to_json(), cached=True))
    return results  # type: ignore[return-value]
