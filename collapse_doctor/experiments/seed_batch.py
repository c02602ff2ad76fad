"""K probes of one config, differing only in their seed, trained as one vectorised model in one process
(train/seed_batch.py says what that changes). Each seed gets its own JSONL, verdict and report, as a
probe would; the report records the batch it ran in, because its rows depend on it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from collapse_doctor.config import LoadedConfig, config_to_dict
from collapse_doctor.data.arc import load_tasks, usable_tasks
from collapse_doctor.errors import CollapseDoctorError, ConfigError, DataError
from collapse_doctor.experiments.identity import probe_key
from collapse_doctor.experiments.presets import PRESETS, apply_preset, replace_key, steps_per_epoch
from collapse_doctor.experiments.probe import (
    ProbeResult,
    check_memory,
    configure_cpu,
    data_fields,
    default_output_dir,
    resolve_device,
    verdict_fields,
    versions,
)
from collapse_doctor.judge.measures import measure, precursors
from collapse_doctor.judge.verdict import early_stop, judge
from collapse_doctor.train.seed_batch import SeedBatchTrainer, batch_dropout_seed

WHAT_DIFFERS = (
    "seed batch: the seeds trained as one vectorised model (torch.func.vmap); each seed's initialisation and "
    "data order are its single run's, but its dropout masks come from one generator shared by the batch and its "
    "support pairs are padded to the batch's most, so its rows differ from a single probe's (docs/speed.md)"
)


def run_seed_batch(
    loaded: LoadedConfig,
    seeds: Sequence[int],
    *,
    preset: str = "tiny",
    device: str = "cpu",
    data: str = "arc-agi-1",
    solutions: str | None = None,
    out_dir: Path | None = None,
    names: Sequence[str] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[ProbeResult]:
    """Train `seeds` of one config as one seed batch and judge each seed; results in seed order.
    probe.seed in the config is ignored (each seed's config gets its own, for its report and key)."""
    seeds = [int(s) for s in seeds]
    if len(seeds) < 1 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seed-batch: seeds {seeds} must be distinct and at least one")
    if preset not in PRESETS:
        raise CollapseDoctorError(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
    config, changes = apply_preset(loaded, PRESETS[preset])
    if config.probe.warm_start_steps:
        raise ConfigError(f"{loaded.source}: probe.warm_start_steps: a seed batch does not run warm starts")
    dev = resolve_device(device)
    if dev.type != "cpu":
        raise CollapseDoctorError("--seed-batch runs on the CPU only in this version (its speed-up was measured there)")
    tasks_all = load_tasks(data, solutions)
    tasks = usable_tasks(tasks_all, config.data, config.model.max_grid_size)
    if not tasks:
        raise DataError(f"{data}: none of its {len(tasks_all)} tasks fits the {config.model.max_grid_size} canvas")
    configure_cpu(config.probe)
    check_memory(replace_key(config, "training.batch_size", config.training.batch_size * len(seeds)), loaded.source)
    spe = steps_per_epoch(config)
    per_seed = [replace_key(config, "probe.seed", s) for s in seeds]
    keys = [probe_key(c, preset, data, solutions, str(dev), seed_batch=tuple(seeds)) for c in per_seed]
    out_dir = Path(out_dir) if out_dir is not None else default_output_dir()
    names = (
        list(names)
        if names is not None
        else [f"{Path(loaded.source).stem}-{preset}-seed{s}-{k[:8]}" for s, k in zip(seeds, keys)]
    )
    paths = [out_dir / f"{name}.jsonl" for name in names]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handles = [path.open("w", encoding="utf-8") for path in paths]
    except OSError as exc:
        raise CollapseDoctorError(f"{out_dir}: cannot write metrics: {exc.strerror or exc}") from None

    trainer = SeedBatchTrainer(config, tasks, seeds=seeds, steps_per_epoch=spe)
    rows: list[list[dict]] = [[] for _ in seeds]
    stopped: list[str | None] = [None] * len(seeds)
    started = time.perf_counter()
    try:
        for _ in range(config.probe.steps):
            if all(reason is not None for reason in stopped):
                break
            for s, seed_rows in enumerate(trainer.train_step()):
                if stopped[s] is not None:
                    continue  # a stopped seed trains on with the batch, but its rows end where it stopped
                rows[s] += seed_rows
                for row in seed_rows:
                    handles[s].write(json.dumps(row, sort_keys=True) + "\n")
                handles[s].flush()
                stopped[s] = _stop_reason(trainer, s, rows[s], config)
            if on_step is not None:
                on_step(trainer.step)
    finally:
        for handle in handles:
            handle.close()
    elapsed = time.perf_counter() - started
    results = []
    for s, seed in enumerate(seeds):
        verdict = judge(rows[s], config.verdict)
        metric_rows = [r for r in rows[s] if "event" not in r]
        report = {
            **verdict_fields(verdict),
            "ran": {
                "config": loaded.source,
                "overrides": list(loaded.overrides),
                "preset": preset,
                "preset_changes": [vars(c) for c in changes],
                "seed": seed,
                "seed_batch": seeds,
                "dropout_seed": batch_dropout_seed(seeds),
                "gradient_checkpointing_applied": False,
                "steps": config.probe.steps,
                "steps_run": len(metric_rows),
                "steps_per_epoch": spe,
                "device": str(dev),
                "dtype": "float32",
                "threads": torch.get_num_threads(),
                "flush_denormal": config.probe.flush_denormal,
                "stopped_early": stopped[s],
                "steps_saved": config.probe.steps - len(metric_rows),
                "skipped_steps": trainer.skipped_steps[s],
            },
            "data": data_fields(data, tasks_all, tasks, config.model.max_grid_size),
            "unused_keys": [vars(u) for u in loaded.unused_keys],
            "notes": [WHAT_DIFFERS],
            "versions": versions(),
            "timing": {
                "seconds": elapsed / len(seeds),  # this seed's share of the batch's time
                "batch_seconds": elapsed,
                "steps_per_second": trainer.step / elapsed if elapsed > 0 else None,
            },
            "metrics": str(paths[s]),
            "measures": measure(rows[s], config.verdict, first_step=0, budget=config.probe.steps).to_json(),
            "precursors": precursors(rows[s]),
            "config": config_to_dict(per_seed[s]),
        }
        results.append(ProbeResult(verdict, rows[s], paths[s], report))
    return results


def _stop_reason(trainer: SeedBatchTrainer, s: int, rows: list[dict], config) -> str | None:
    """Why seed s stops here (the probe's rules: the non-finite budget, early_stop_after), if it does."""
    if trainer.consecutive_nonfinite[s] >= config.verdict.nonfinite_budget:
        return f"stopped after {trainer.consecutive_nonfinite[s]} consecutive non-finite steps"
    if config.probe.early_stop_after is not None and (
        reason := early_stop(rows, config.verdict, config.probe.early_stop_after)
    ):
        return f"stopped early: {reason}"
    return None
