"""Running a job list: cached summaries at once, the rest by an executor, each result cached as soon as
it arrives (whoever ran it), so an interrupted sweep resumes from the cache."""

from __future__ import annotations

from collections.abc import Callable

from collapse_doctor.sweeps.cache import ProbeCache
from collapse_doctor.sweeps.executors import Executor, LocalExecutor
from collapse_doctor.sweeps.jobs import FAILED, ProbeJob, ProbeSummary

ProgressCallback = Callable[[int, int, ProbeSummary], None]  # (done, total, the summary that just finished)


def run_jobs(
    jobs_list: list[ProbeJob],
    *,
    jobs: int = 1,
    cache_dir=None,
    progress: ProgressCallback | None = None,
    executor: Executor | None = None,
) -> list[ProbeSummary]:
    """Summaries in job order: cached ones at once, the rest run by the executor (default: local, `jobs`
    worker processes). Every result is cached as soon as it arrives, whoever ran it."""
    executor = executor or LocalExecutor(jobs)
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
    for i, entry in executor.run([(i, jobs_list[i], keys[i]) for i in pending], metrics_dir):
        if entry["label"] != FAILED:
            cache.put(keys[i], entry)
        finish(i, ProbeSummary.from_json(entry))
    for i in duplicates:
        source = results[first_of[keys[i]]]
        finish(i, ProbeSummary.from_json(source.to_json(), cached=True))
    return results  # type: ignore[return-value]
