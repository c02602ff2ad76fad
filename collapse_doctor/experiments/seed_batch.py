"""K probes of one config, differing only in their seed, trained as one vectorised model in one process
(train/seed_batch.py says what that changes). Each seed gets its own JSONL, verdict and report, as a
probe would; the report records the batch it ran in, because its rows depend on it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from collapse_doctor.config import LoadedConfig, config_to_dict, replace_key
from collapse_doctor.errors import CollapseDoctorError, ConfigError
from collapse_doctor.experiments.identity import probe_key
from collapse_doctor.experiments.run_setup import (
    ProbeReport,
    ProbeResult,
    RunRecord,
    RunSettings,
    RunSetup,
    Timing,
    default_output_dir,
    metrics_name,
    open_metrics,
    prepare_run,
)
from collapse_doctor.judge.measures import measure, precursors
from collapse_doctor.judge.verdict import RunningVerdict, judge
from collapse_doctor.train.seed_batch import SeedBatchTrainer, batch_dropout_seed

WHAT_DIFFERS = (
    "seed batch: the seeds trained as one vectorised model (torch.func.vmap); each seed's initialisation and "
    "data order are its single run's, but its dropout masks come from one generator shared by the batch and its "
    "support pairs are padded to the batch's most, so its rows differ from a single probe's (docs/speed.md)"
)


def run_seed_batch(
    loaded: LoadedConfig,
    seeds: Sequence[int],
    settings: RunSettings = RunSettings(),
    *,
    out_dir: Path | None = None,
    names: Sequence[str] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[ProbeResult]:
    """Train `seeds` of one config as one seed batch and judge each seed; results in seed order.
    probe.seed in the config is ignored (each seed's config gets its own, for its report and key)."""
    seeds = [int(s) for s in seeds]
    if len(seeds) < 1 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seed-batch: seeds {seeds} must be distinct and at least one")
    setup = prepare_run(loaded, settings, parallel_copies=len(seeds))
    config = setup.config
    if config.probe.warm_start_steps:
        raise ConfigError(f"{loaded.source}: probe.warm_start_steps: a seed batch does not run warm starts")
    if setup.device.type != "cpu":
        raise CollapseDoctorError("--seed-batch runs on the CPU only in this version (its speed-up was measured there)")
    per_seed = [replace_key(config, "probe.seed", s) for s in seeds]
    device = str(setup.device)
    keys = [
        probe_key(c, settings.preset, settings.data, settings.solutions, device, seed_batch=tuple(seeds))
        for c in per_seed
    ]
    out_dir = Path(out_dir) if out_dir is not None else default_output_dir()
    names = list(names) if names is not None else [metrics_name(setup, s, k) for s, k in zip(seeds, keys)]
    paths = [out_dir / f"{name}.jsonl" for name in names]
    handles = open_metrics(paths)

    trainer = SeedBatchTrainer(config, setup.tasks, seeds=seeds, steps_per_epoch=setup.steps_per_epoch)
    started = time.perf_counter()
    try:
        rows, stopped = _train_batch(trainer, config, handles, on_step)
    finally:
        for handle in handles:
            handle.close()
    elapsed = time.perf_counter() - started
    return [
        _result(setup, trainer, s, seeds, rows[s], stopped[s], elapsed, paths[s], config_to_dict(per_seed[s]))
        for s in range(len(seeds))
    ]


def _train_batch(trainer: SeedBatchTrainer, config, handles, on_step) -> tuple[list[list[dict]], list[str | None]]:
    """Train until every seed has stopped or the budget is spent; each seed's rows and its stop reason."""
    rows: list[list[dict]] = [[] for _ in handles]
    running = [RunningVerdict(config.verdict) for _ in handles]
    stopped: list[str | None] = [None] * len(handles)
    for _ in range(config.probe.steps):
        if all(reason is not None for reason in stopped):
            break
        for s, seed_rows in enumerate(trainer.train_step()):
            if stopped[s] is not None:
                continue  # a stopped seed trains on with the batch, but its rows end where it stopped
            rows[s] += seed_rows
            running[s].extend(seed_rows)
            for row in seed_rows:
                handles[s].write(json.dumps(row, sort_keys=True) + "\n")
            handles[s].flush()
            stopped[s] = _stop_reason(trainer, s, running[s], config)
        if on_step is not None:
            on_step(trainer.step)
    return rows, stopped


def _result(
    setup: RunSetup,
    trainer: SeedBatchTrainer,
    s: int,
    seeds: list[int],
    rows: list[dict],
    stopped: str | None,
    elapsed: float,
    path: Path,
    resolved: dict,
) -> ProbeResult:
    """Seed s's verdict and report, as a lone probe's, with the batch it ran in."""
    config = setup.config
    verdict = judge(rows, config.verdict)
    metric_rows = [r for r in rows if "event" not in r]
    report = ProbeReport(
        verdict=verdict,
        ran=RunRecord.of(
            setup,
            seeds[s],
            len(metric_rows),
            stopped,
            trainer.skipped_steps[s],
            seed_batch=seeds,
            dropout_seed=batch_dropout_seed(seeds),
            gradient_checkpointing_applied=False,
        ),
        data=setup.data_record(),
        unused_keys=[vars(u) for u in setup.loaded.unused_keys],
        notes=[*setup.notes, WHAT_DIFFERS, *_not_in_a_batch(config)],
        timing=Timing(
            elapsed / len(seeds),  # this seed's share of the batch's time
            trainer.step / elapsed if elapsed > 0 else None,
            batch_seconds=elapsed,
        ),
        metrics=str(path),
        measures=measure(rows, config.verdict, first_step=0, budget=config.probe.steps).to_json(),
        precursors=precursors(rows),
        config=resolved,
    )
    return ProbeResult(verdict, rows, path, report)


def _not_in_a_batch(config) -> list[str]:
    """What a lone probe of this config does that its seed batch does not (train/step.py is shared; these are not)."""
    notes = []
    if config.training.use_ema:
        notes.append(
            "training.use_ema: a seed batch keeps no EMA of the weights (evaluation only: the verdict judges the raw "
            "weights either way, so only the report's raw-vs-EMA comparison is missing)"
        )
    if config.training.gradient_checkpointing:
        notes.append(
            "training.gradient_checkpointing: not applied in a seed batch (torch.utils.checkpoint fails under vmap); "
            "it changes memory, not gradients, which grad-check measures"
        )
    return notes


def _stop_reason(trainer: SeedBatchTrainer, s: int, running: RunningVerdict, config) -> str | None:
    """Why seed s stops here (the probe's rules: the non-finite budget, early_stop_after), if it does."""
    if trainer.consecutive_nonfinite[s] >= config.verdict.nonfinite_budget:
        return f"stopped after {trainer.consecutive_nonfinite[s]} consecutive non-finite steps"
    if reason := running.early_stop(config.probe.early_stop_after):
        return f"stopped early: {reason}"
    return None
