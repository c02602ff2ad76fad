"""A probe: a short training of the bundled RLAN on real ARC tasks, streamed to JSONL, ending in a verdict.

`run_probe` is what every command calls (probe, and the sweeps built on it); the CLI only renders its
result. The report says what was run: config, overrides, preset changes, seed, steps, device, dtype,
threads, versions and the data it used.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from collapse_doctor.config import Config, LoadedConfig, config_to_dict
from collapse_doctor.config.schedule import Schedule, steps_per_epoch
from collapse_doctor.experiments.identity import probe_key
from collapse_doctor.experiments.presets import PRESETS, Change, apply_preset
from collapse_doctor.experiments.regimes import LONGEST_RECOVERY
from collapse_doctor.experiments.run_setup import (  # noqa: F401 (ProbeResult: re-exported)
    ProbeReport,
    ProbeResult,
    RunRecord,
    RunSettings,
    RunSetup,
    Timing,
    WarmStartReport,
    default_output_dir,
    default_warm_dir,
    metrics_name,
    open_metrics,
    prepare_run,
)
from collapse_doctor.experiments.warm_start import BASE_OFF, MIN_PHASE1_STEPS, phase1_config, run_phase1, transplant
from collapse_doctor.experiments.warm_start import base_config as warm_base_config
from collapse_doctor.judge.measures import measure, precursors
from collapse_doctor.judge.verdict import COLLAPSED, FG_COLLAPSE, INCONCLUSIVE, RunningVerdict, Verdict, judge
from collapse_doctor.train.step import step_counts
from collapse_doctor.train.trainer import GradHook, Trainer

PHASE2_SEED_OFFSET = 1_000_003  # phase 2 of a warm start draws dropout from seed + this
StepCallback = Callable[[dict], None]  # called with each metrics row as it is written


def run_probe(
    loaded: LoadedConfig,
    settings: RunSettings = RunSettings(),
    *,
    out_dir: Path | None = None,
    name: str | None = None,
    on_row: StepCallback | None = None,
    on_start: Callable[[int], None] | None = None,
    grad_hook: GradHook | None = None,
    base_config: LoadedConfig | None = None,
    warm_cache_dir: Path | None = None,
    applied: tuple[Config, list[Change]] | None = None,
    base_applied: Config | None = None,
) -> ProbeResult:
    """Run one probe and judge it. Seed and steps come from the config (probe.seed, probe.steps; the
    CLI turns --seed/--steps into overrides so the report lists them). applied / base_applied: the
    config (and the base) with the preset already applied, when the caller has them (a sweep's job)."""
    setup = prepare_run(loaded, settings, applied=applied)
    config, dev, preset = setup.config, setup.device, settings.preset
    trainer = Trainer(
        config,
        setup.tasks,
        seed=config.probe.seed,
        steps_per_epoch=setup.steps_per_epoch,
        device=dev,
        grad_hook=grad_hook,
    )
    if name is None:
        key = probe_key(config, preset, settings.data, settings.solutions, str(dev))
        name = metrics_name(setup, config.probe.seed, key)
    out_dir = Path(out_dir) if out_dir is not None else default_output_dir()
    metrics_path = out_dir / f"{name}.jsonl"
    (handle,) = open_metrics([metrics_path])

    warm = config.probe.warm_start_steps
    if on_start is not None:
        on_start(config.probe.steps + (warm or 0))
    rows: list[dict] = []  # the rows the verdict judges (phase 2 of a warm start)
    started = time.perf_counter()
    stopped_early = None
    warm_report = None
    with handle:
        if warm:
            base = base_applied or (apply_preset(base_config, PRESETS[preset])[0] if base_config else config)
            warm_report = _phase_one(setup, trainer, base, base_config, warm_cache_dir, settings, rows, handle, on_row)
        if warm_report is None or warm_report.phase1_learned:
            stopped_early = _train(trainer, config, rows, handle, on_row, phase=2 if warm else None)
    elapsed = time.perf_counter() - started
    verdict = judge(rows, config.verdict)
    if warm_report is not None:
        verdict = warm_verdict(verdict, rows, warm_report, config)
    report = _report(setup, trainer, verdict, rows, stopped_early, elapsed, metrics_path)
    report.warm_start = warm_report
    return ProbeResult(verdict, rows, metrics_path, report)


def _phase_one(
    setup: RunSetup,
    trainer: Trainer,
    base: Config,
    base_config: LoadedConfig | None,
    warm_cache_dir: Path | None,
    settings: RunSettings,
    rows: list[dict],
    handle,
    on_row: StepCallback | None,
) -> WarmStartReport:
    """A warm start's phase 1: train the base (after the preset; base_config names it) or load its
    checkpoint, write its rows, and copy it into the candidate's trainer when it learned."""
    config, dev, preset = setup.config, setup.device, setup.preset
    phase1_cfg = phase1_config(warm_base_config(base), config)
    key = probe_key(phase1_cfg, preset, settings.data, settings.solutions, str(dev))
    path = Path(warm_cache_dir or default_warm_dir()) / f"{key}.pt"
    phase1 = run_phase1(
        phase1_cfg,
        lambda c: Trainer(c, setup.tasks, seed=c.probe.seed, steps_per_epoch=steps_per_epoch(c), device=dev),
        path,
    )
    for row in phase1.rows:
        handle.write(json.dumps({**row, "phase": 1}, sort_keys=True) + "\n")
        if "event" not in row and on_row is not None:
            on_row(row)
    report = WarmStartReport(
        base=_base_name(base_config, setup.loaded),
        phase1_steps=phase1.steps,
        phase1_learned=phase1.learned,
        phase1_fg_level=_window_fg(phase1.rows[-config.verdict.window_before :]),
        phase1_cached=phase1.cached,
        phase1_checkpoint=str(path),
    )
    if phase1.learned:
        trainer.first_step = phase1.steps
        copy = transplant(phase1, trainer, config, phase1_cfg)
        report.copy = copy.to_json()
        switch = {
            "step": phase1.steps,
            "epoch": 0.0,
            "event": f"warm start: {copy.share_copied:.0%} of parameters copied from phase 1",
        }
        rows.append(switch)
        handle.write(json.dumps(switch, sort_keys=True) + "\n")
        # Phase 1 moved the global RNG only when it trained (not when it came from the cache):
        # reseed, so phase 2's dropout is the same either way.
        torch.manual_seed(config.probe.seed + PHASE2_SEED_OFFSET)
    return report


def _report(
    setup: RunSetup,
    trainer: Trainer,
    verdict: Verdict,
    rows: list[dict],
    stopped_early: str | None,
    elapsed: float,
    metrics_path: Path,
) -> ProbeReport:
    config = setup.config
    metric_rows = [r for r in rows if "event" not in r]
    notes = list(setup.notes)
    if verdict.label in (COLLAPSED, FG_COLLAPSE) and verdict.onset_step is not None:
        age = len([r for r in metric_rows if r["step"] >= verdict.onset_step])
        if age < LONGEST_RECOVERY:
            notes.append(
                f"this collapse was followed for {age} steps; the known-good OLD (2a50f2d) config also collapses at "
                "step 1-4 at batch 8 "
                f"and learns again only after 124-{LONGEST_RECOVERY} steps (docs/validity.md), so this verdict cannot "
                "tell a late recovery from none: "
                "compare against a good config in a calibrated regime (collapse-doctor calibrate, --regime) or with "
                "--warm-start"
            )
    spe = setup.steps_per_epoch
    not_reached = [
        f"{name} (step {epoch * spe})"
        for epoch, name in Schedule.from_config(config).events()
        if epoch * spe >= len(metric_rows)
    ]
    dtype = str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype is not None else "float32"
    return ProbeReport(
        verdict=verdict,
        ran=RunRecord.of(
            setup,
            config.probe.seed,
            len(metric_rows),
            stopped_early,
            trainer.skipped_steps,
            dtype=dtype,
            activations_not_reached=not_reached if stopped_early else [],
        ),
        data=setup.data_record(),
        unused_keys=[vars(u) for u in setup.loaded.unused_keys],
        notes=notes,
        timing=Timing(elapsed, len(metric_rows) / elapsed if elapsed > 0 else None),
        metrics=str(metrics_path),
        measures=measure(rows, config.verdict, first_step=trainer.first_step, budget=config.probe.steps).to_json(),
        precursors=precursors(rows),
        config=config_to_dict(config),
        ema=ema_comparison(trainer) if trainer.ema is not None else None,
    )


def _train(
    trainer: Trainer, config, rows: list[dict], handle, on_row: StepCallback | None, phase: int | None
) -> str | None:
    """Train probe.steps steps, appending to `rows` and the JSONL; the reason it stopped early, if it did."""
    running = RunningVerdict(config.verdict, rows) if config.probe.early_stop_after is not None else None
    for _ in range(config.probe.steps):
        step_rows = trainer.train_step()
        for row in step_rows:
            rows.append(row)
            handle.write(json.dumps(row if phase is None else {**row, "phase": phase}, sort_keys=True) + "\n")
            if "event" not in row and on_row is not None:
                on_row(row)
        handle.flush()
        if trainer.consecutive_nonfinite >= config.verdict.nonfinite_budget:
            return (
                f"stopped after {trainer.consecutive_nonfinite} consecutive non-finite steps (the reference aborts "
                f"the epoch at {config.verdict.nonfinite_budget})"
            )
        if running is not None:
            running.extend(step_rows)
            if reason := running.early_stop(config.probe.early_stop_after):
                return f"stopped early: {reason}"
    return None


def _window_fg(rows: list[dict]) -> float | None:
    values = [r["fg_acc"] for r in rows if "event" not in r and isinstance(r.get("fg_acc"), (int, float))]
    return sum(values) / len(values) if values else None


def _base_name(base_config: LoadedConfig | None, loaded: LoadedConfig) -> str:
    source = base_config.source if base_config is not None else loaded.source
    return f"{source} with {', '.join(f'{k}={v}' for k, v in BASE_OFF.items())}"


def warm_verdict(verdict: Verdict, rows: list[dict], warm: WarmStartReport, config) -> Verdict:
    """A warm start's verdict: INCONCLUSIVE when phase 1 never learned; otherwise phase 2's verdict with
    the switch compared against the level phase 1 reached (and the reference's >= 50 % drop test)."""
    if not warm.phase1_learned:
        return Verdict(
            INCONCLUSIVE,
            None,
            [
                f"warm start: phase 1 (the base) did not learn within {warm.phase1_steps} steps (final-window FG "
                f"and BG accuracy >= {config.verdict.learned_acc:.0%} with no open collapse"
                + (
                    f"; judging that needs at least {MIN_PHASE1_STEPS} steps"
                    if warm.phase1_steps < MIN_PHASE1_STEPS
                    else ""
                )
                + "), so the switch cannot be tested; raise probe.warm_start_steps (or use --warm-start auto) or "
                "choose a regime where the base learns (calibrate)"
            ],
            0,
            {},
        )
    level = warm.phase1_fg_level
    after = _window_fg([r for r in rows if "event" not in r][: config.verdict.window_after])
    drop = (level - after) / level if level and after is not None else None
    warm.phase2_fg_after, warm.relative_fg_drop = after, drop
    warm.reference_drop_test = None if drop is None else drop >= 0.5
    final = verdict.final.get("fg_acc")
    text = (
        (
            f"warm start: phase 1 reached FG {level:.1%} (last {config.verdict.window_before} steps of "
            f"{warm.phase1_steps}); "
            f"phase 2 FG {after:.1%} over its first {config.verdict.window_after} steps (relative drop {drop:.0%}; "
            "the reference flags >= 50 %)" + (f", {final:.1%} at the end" if final is not None else "")
        )
        if level is not None and after is not None and drop is not None
        else "warm start: phase-1 or phase-2 FG accuracy unavailable"
    )
    return dataclasses.replace(verdict, reasons=[*verdict.reasons, text])


@torch.no_grad()
def ema_comparison(trainer: Trainer) -> dict:
    """FG/BG accuracy of the raw and the EMA weights on the next training batch (EMA is evaluation-only)."""
    t = trainer.config.training
    batch = trainer.stream.batch(trainer.step * t.grad_accumulation_steps, t.batch_size).to(trainer.device)
    stage = trainer.stage()
    out = {}
    for label, model in (("raw", trainer.model), ("ema", trainer.ema.evaluation_copy(trainer.model))):
        was_training = model.training
        model.eval()
        counts = step_counts(trainer.config.model.num_classes)
        counts.add(
            model(batch.query_input, batch.support_inputs, batch.support_outputs, batch.pair_mask, stage).logits,
            batch.query_target,
        )
        model.train(was_training)
        row = counts.row()
        out[label] = {k: row[k] for k in ("fg_acc", "bg_acc", "pred_bg_share")}
    return out


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
