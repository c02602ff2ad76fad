"""The CI gate: a fast verdict with exit codes and machine-readable output (its JUnit, annotations
and step summary are written by sweeps/gate.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from collapse_doctor.cli.app import (
    EXIT_CODES_HELP,
    CacheDirOpt,
    DataOpt,
    JsonOpt,
    ProbeLines,
    RegimeOpt,
    SeedBatchOpt,
    SetOpt,
    WarmOpt,
    app,
    check_writable,
    err,
    note_unused_keys,
    on_interrupt,
    out,
    regime_overrides,
    worker_count,
    write_json_output,
    write_text_output,
)
from collapse_doctor.config import load_config


@app.command("gate", epilog=EXIT_CODES_HELP)
def gate_command(
    config: Optional[Path] = typer.Argument(
        None,
        help="YAML config; default: \\[tool.collapse-doctor] config in the nearest pyproject.toml, else the embedded "
        "NEW config.",
        show_default=False,
    ),
    overrides: SetOpt = [],
    seeds: Optional[int] = typer.Option(
        None, "--seeds", min=1, help="Seeds, decided by majority (default 3, or \\[tool.collapse-doctor] seeds)."
    ),
    steps: Optional[int] = typer.Option(
        None, "--steps", min=1, help="Optimizer steps per probe (default: the tiny preset's 120)."
    ),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", min=1, help="Parallel probes (default: the CPU count, at most the seeds)."
    ),
    cache_dir: CacheDirOpt = None,
    data: DataOpt = "arc-agi-1",
    junit: Optional[Path] = typer.Option(
        None, "--junit", help="Write JUnit XML: one test case per seed, a failure element with the evidence."
    ),
    json_path: JsonOpt = None,
    regime: RegimeOpt = None,
    warm_start: WarmOpt = None,
    against: Optional[Path] = typer.Option(
        None,
        "--against",
        help="A known-good config: run every seed of both and classify by the primary measure (fg_auc; one-sided "
        "exact rank test p < 0.05 and Cliff's delta >= 0.474 fails, delta < 0.33 passes, else exit 3); needs "
        "--seeds 4+.",
    ),
    seed_batch: SeedBatchOpt = False,
) -> None:
    """CI smoke gate: a short tiny-preset probe on a few seeds, majority verdict, exit codes as probe; JUnit XML and GitHub Actions annotations."""
    import os

    from collapse_doctor.sweeps.gate import find_tool_table, github_annotation, junit_xml, run_gate, step_summary
    from collapse_doctor.sweeps.settings import GateSettings

    check_writable(junit, json_path, inputs=(config, against))
    tool = find_tool_table()
    tool_config = tool.path.parent / tool.config if tool.config is not None else None
    note_unused_keys(load_config(config if config is not None else tool_config, [*tool.overrides, *overrides]))
    if against is not None:
        note_unused_keys(load_config(against))
    jobs = worker_count(jobs) if jobs is not None else None  # run_gate: the CPU count, at most the seeds
    regime = regime or tool.regime  # --regime wins over [tool.collapse-doctor] regime
    # --against with no regime named: calibrate the pair first (sweeps/autoregime.py)
    auto_regime = against is not None and regime is None and warm_start is None
    on_interrupt(
        f"every probe that finished is in the cache ({cache_dir or '~/.cache/collapse-doctor/cache'}); run the same "
        "command again to resume from them"
    )
    with err.status("gate: probing ...") as status:
        lines = ProbeLines("gate")

        def progress(done: int, total: int, summary) -> None:
            lines.probe(summary, summary.tag, f"{done} of {total} in this round")
            status.update(f"gate: seed {summary.seed} {summary.label}{' (cached)' if summary.cached else ''}")

        settings = GateSettings(
            config_path=config,
            against=against,
            overrides=(*regime_overrides(regime, warm_start), *overrides),
            seeds=seeds,
            steps=steps,
            jobs=jobs,
            cache_dir=cache_dir,
            data=data,
            seed_batch=seed_batch,
            auto_regime=auto_regime,
        )
        result = run_gate(settings=settings, tool=tool, progress=progress)
    if junit is not None and str(junit) == "-":
        sys.stdout.write(junit_xml(result))  # --junit -: the XML on stdout, no file named '-'
    elif junit is not None:
        write_text_output(junit, junit_xml(result), "JUnit XML")
    if json_path is not None:
        write_json_output(json_path, result.to_json())
    if os.environ.get("GITHUB_ACTIONS") == "true":
        annotation = github_annotation(result, os.environ.get("GITHUB_WORKSPACE"))
        if annotation:  # stdout, where Actions reads it, unless stdout carries --json - or --junit -
            machine = "-" in (str(json_path), str(junit))
            print(annotation, file=sys.stderr if machine else sys.stdout)
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            write_text_output(
                Path(os.environ["GITHUB_STEP_SUMMARY"]), step_summary(result), "step summary", append=True
            )
    if (json_path is None or str(json_path) != "-") and (junit is None or str(junit) != "-"):
        if result.auto_regime is not None and result.auto_regime.calibration is not None:
            if result.auto_regime.regime is None:
                from collapse_doctor.cli.sweep_reports import render_calibration

                render_calibration(out, result.auto_regime.calibration)
        if result.auto_regime is not None and result.auto_regime.regime is not None:
            out.print(result.auto_regime.line(), highlight=False, soft_wrap=True)
        out.print(result.one_line(), highlight=False, soft_wrap=True)
    raise typer.Exit(result.exit_code)
