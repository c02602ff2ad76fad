"""One probe of a sweep: the job (a config, its overrides and seed; picklable, so any executor can
run it), how it is run (`execute`), and the summary that comes back and is cached.

Every probe fixes its own thread count (probe.threads), so a probe gives the same numbers in a worker
process as in the main one, and parallel sweeps equal serial ones. A job carries the code fingerprint of
the process that keyed it; a worker whose code differs (a source file edited while the sweep ran: a
spawned worker imports the new file) refuses it, since its result would be cached under the old code's key.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from collapse_doctor.config import Config, LoadedConfig, load_config, parse_config_text
from collapse_doctor.errors import RunError
from collapse_doctor.experiments.identity import code_fingerprint, probe_key
from collapse_doctor.experiments.presets import PRESETS, Change, apply_preset
from collapse_doctor.experiments.probe import run_probe
from collapse_doctor.experiments.run_setup import ProbeResult, RunSettings, WarmStartReport, resolve_device
from collapse_doctor.experiments.seed_batch import run_seed_batch
from collapse_doctor.judge.signals import SERIES
from collapse_doctor.judge.verdict import is_good

SERIES_FIELDS = SERIES  # judge/signals.py


@dataclass(frozen=True)
class ProbeJob:
    config_path: str | None
    overrides: tuple[str, ...]
    preset: str
    data: str
    solutions: str | None
    device: str
    tag: str = ""  # which variant / commit it belongs to
    config_text: str | None = None  # the YAML itself (a config read from a git commit); wins over config_path
    source: str = ""  # how messages name config_text, e.g. "abc1234:configs/rlan.yaml"
    base_text: str | None = None  # warm start: the base's YAML (the good endpoint, the minimal base)
    base_source: str = ""
    base_overrides: tuple[str, ...] | None = (
        None  # warm start: the base is this job's config with these overrides instead
    )
    seed_batch: tuple[int, ...] | None = None  # run with these seeds as one vectorised model (train/seed_batch.py)
    # The code of the process that made the job (and keys it); compare=False: it is not part of the probe's identity
    code: str = field(default_factory=code_fingerprint, compare=False)

    # What the job has parsed and resolved, kept so that a probe parses each config and applies the preset
    # once: key() fills it in the process that keys the job, and it travels with the job to the worker.
    resolved: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def load(self) -> LoadedConfig:
        if "loaded" not in self.resolved:
            self.resolved["loaded"] = _load_with(self, list(self.overrides))
        return self.resolved["loaded"]

    def load_base(self) -> LoadedConfig | None:
        """The warm-start base's config (bisect: the good endpoint; ablate: its minimal base), with the
        job's overrides; None: the probe derives the base from its own config."""
        if "base" not in self.resolved:
            overrides = list(self.base_overrides if self.base_overrides is not None else self.overrides)
            if self.base_text is not None:
                base = parse_config_text(
                    self.base_text, source=self.base_source or "<base config>", overrides=overrides
                )
            elif self.base_overrides is not None:
                base = _load_with(self, overrides)
            else:
                base = None
            self.resolved["base"] = base
        return self.resolved["base"]

    def prepared(self) -> tuple[Config, list[Change]]:
        """The config after the preset, and what the preset changed."""
        if "prepared" not in self.resolved:
            self.resolved["prepared"] = apply_preset(self.load(), PRESETS[self.preset])
        return self.resolved["prepared"]

    def prepared_base(self) -> Config | None:
        """A warm start's base after the preset; None when the job is not a warm start or has no base of its own."""
        if "prepared_base" not in self.resolved:
            base = self.load_base() if self.prepared()[0].probe.warm_start_steps else None  # a cold probe has none
            self.resolved["prepared_base"] = apply_preset(base, PRESETS[self.preset])[0] if base else None
        return self.resolved["prepared_base"]

    def key(self) -> str:
        return probe_key(
            self.prepared()[0],
            self.preset,
            self.data,
            self.solutions,
            str(resolve_device(self.device)),
            self.prepared_base(),
            seed_batch=self.seed_batch,
        )

    def run_settings(self) -> RunSettings:
        return RunSettings(self.preset, self.device, self.data, self.solutions)

    def batch_group(self) -> tuple:
        """Jobs with equal groups run as one seed batch: the same config but for probe.seed."""
        overrides = tuple(o for o in self.overrides if not o.startswith("probe.seed="))
        return (self.seed_batch, self.config_path, self.config_text, overrides, self.preset, self.data, self.solutions)

    @property
    def seed(self) -> int:
        return self.load().config.probe.seed


def _load_with(job: "ProbeJob", overrides: list[str]) -> LoadedConfig:
    if job.config_text is not None:
        return parse_config_text(job.config_text, source=job.source or "<config text>", overrides=overrides)
    return load_config(job.config_path, overrides)


@dataclass
class ProbeSummary:
    label: str
    onset_step: int | None
    seed: int
    final: dict
    reasons: list[str]
    seconds: float
    key: str
    metrics: str
    series: list[dict] = field(default_factory=list)  # per step: SERIES_FIELDS
    events: list[dict] = field(default_factory=list)
    steps_run: int = 0
    steps_saved: int = 0  # by early stopping
    worker: dict = field(default_factory=dict)  # who ran it: executor, hostname, pid (Ray: node and worker ids)
    measures: dict = field(default_factory=dict)  # collapse_doctor.judge.measures over the judged steps
    precursors: dict = field(default_factory=dict)  # reported, never used to classify
    warm_start: WarmStartReport | None = None  # phase 1 and the copy, for a warm-start probe
    cached: bool = False
    tag: str = ""  # the job's tag (variant, commit, side), set by run_jobs for progress lines

    @property
    def good(self) -> bool | None:
        return is_good(self.label)

    def to_json(self, compact: bool = False) -> dict:
        data = {k: v for k, v in vars(self).items() if not (compact and k in ("series", "events")) and k != "tag"}
        data["warm_start"] = self.warm_start.to_json() if self.warm_start is not None else None
        data["good"] = self.good
        return data

    @classmethod
    def from_json(cls, data: dict, cached: bool = False) -> ProbeSummary:
        fields = {
            k: data[k]
            for k in (
                "label",
                "onset_step",
                "seed",
                "final",
                "reasons",
                "seconds",
                "key",
                "metrics",
                "series",
                "events",
            )
        }
        return cls(
            **fields,
            steps_run=data.get("steps_run", len(data["series"])),
            steps_saved=data.get("steps_saved", 0),
            worker=data.get("worker", {}),
            measures=data.get("measures", {}),
            precursors=data.get("precursors", {}),
            warm_start=WarmStartReport.from_json(data.get("warm_start")),
            cached=cached,
        )


class CodeChanged(RunError):
    """A worker runs other code than the process that keyed its job."""


def check_code(job: ProbeJob) -> None:
    if job.code != code_fingerprint():
        raise CodeChanged(
            "collapse_doctor's source changed on disk while this sweep ran (or a worker runs another installation): "
            "its probes would be cached under the code that started the sweep. The probes finished so far are "
            "cached; run the command again to go on with the code as it is now"
        )


def execute(job: ProbeJob, key: str, metrics_dir: str, worker: dict | None = None) -> dict:
    """Run one probe (in this process, a worker process or a Ray task) and return its summary as JSON.
    metrics_dir is the cache's metrics folder; a warm start's phase-1 checkpoint goes beside it, under the
    same cache directory (--cache-dir)."""
    check_code(job)
    result = run_probe(
        job.load(),
        job.run_settings(),
        out_dir=metrics_dir,
        name=key,
        base_config=job.load_base() if job.prepared_base() is not None else None,
        warm_cache_dir=Path(metrics_dir).parent / "warm",
        applied=job.prepared(),
        base_applied=job.prepared_base(),
    )
    return summarise(result, key, worker or worker_identity("local")).to_json()


def execute_seed_batch(group: list[tuple[ProbeJob, str]], metrics_dir: str, worker: dict | None = None) -> list[dict]:
    """Run jobs of one batch_group as their seed batch; their summaries as JSON, in the group's order.

    The whole batch runs even when some of its seeds are cached (after an interrupted sweep), because
    a seed's rows depend on every seed in its batch; only the group's summaries come back."""
    first = group[0][0]
    check_code(first)
    seeds = list(first.seed_batch or [job.seed for job, _ in group])
    base = tuple(o for o in first.overrides if not o.startswith("probe.seed="))
    siblings = {seed: replace(first, overrides=(*base, f"probe.seed={seed}")) for seed in seeds}
    wanted = {job.seed: key for job, key in group}
    if not set(wanted) <= set(seeds):
        raise ValueError(f"seed batch {seeds}: jobs for seeds {sorted(set(wanted) - set(seeds))} are not in it")
    results = run_seed_batch(
        first.load(),
        seeds,
        first.run_settings(),
        out_dir=metrics_dir,
        names=[wanted.get(seed) or siblings[seed].key() for seed in seeds],
    )
    worker = {**(worker or worker_identity("local")), "seed_batch": seeds}
    by_seed = {seed: result for seed, result in zip(seeds, results)}
    return [summarise(by_seed[job.seed], key, worker).to_json() for job, key in group]


def summarise(result: ProbeResult, key: str, worker: dict) -> ProbeSummary:
    rows = [r for r in result.rows if "event" not in r]
    report = result.report
    return ProbeSummary(
        label=result.verdict.label,
        onset_step=result.verdict.onset_step,
        seed=report.ran.seed,
        final=result.verdict.final,
        reasons=result.verdict.reasons,
        seconds=report.timing.seconds,
        key=key,
        metrics=str(result.metrics_path),
        series=[{k: r.get(k) for k in SERIES_FIELDS} for r in rows],
        events=[r for r in result.rows if "event" in r],
        steps_run=report.ran.steps_run,
        steps_saved=report.ran.steps_saved,
        worker=worker,
        measures=report.measures,
        precursors=report.precursors,
        warm_start=report.warm_start,
    )


FAILED = "FAILED"  # a probe that raised or lost its worker (after the executor's retry): undecided, never cached


def worker_identity(executor: str) -> dict:
    return {"executor": executor, "hostname": socket.gethostname(), "pid": os.getpid()}


def failed_entry(job: ProbeJob, key: str, error: str, worker: dict | None = None) -> dict:
    return ProbeSummary(FAILED, None, job.seed, {}, [error], 0.0, key, "", worker=worker or {}).to_json()
