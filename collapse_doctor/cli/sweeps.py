"""Commands that compare many probes (ablate, calibrate) and how their results read."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from collapse_doctor.cli.app import (
    EXIT_CODES_HELP,
    CacheDirOpt,
    ConfigArg,
    DataOpt,
    ExecutorOpt,
    JobsOpt,
    JsonOpt,
    PresetOpt,
    ProbeLines,
    RayAddressOpt,
    RegimeOpt,
    RepoConfigOpt,
    SeedBatchOpt,
    SetOpt,
    SweepDeviceOpt,
    WarmOpt,
    app,
    check_writable,
    emit,
    err,
    note_unused_keys,
    on_interrupt,
    out,
    regime_overrides,
    worker_count,
    write_text_output,
)
from collapse_doctor.cli.sweep_reports import ablation_html, calibration_html, render_ablation, render_calibration
from collapse_doctor.config import load_config
from collapse_doctor.errors import CollapseDoctorError


@app.command("ablate", epilog=EXIT_CODES_HELP)
def ablate_command(
    config: ConfigArg = None,
    overrides: SetOpt = [],
    preset: PresetOpt = "tiny",
    seeds: int = typer.Option(
        4, "--seeds", min=1, help="Seeds per variant (0..N-1; 4: the fewest at which an exact test reaches p < 0.05)."
    ),
    steps: Optional[int] = typer.Option(
        None, "--steps", min=1, help="Optimizer steps per probe (default: the preset's)."
    ),
    only: list[str] = typer.Option(
        [], "--only", help="Run only variants whose name contains this (repeatable); their references are kept."
    ),
    skip: list[str] = typer.Option([], "--skip", help="Skip variants whose name contains this (repeatable)."),
    alpha: float = typer.Option(
        0.05, "--alpha", help="Significance level of Fisher's exact test for naming a culprit."
    ),
    stage_epoch: int = typer.Option(
        3, "--stage-epoch", help="Start epoch of the staged variants (the reference's fix used 3)."
    ),
    jobs: JobsOpt = None,
    cache_dir: CacheDirOpt = None,
    device: SweepDeviceOpt = "cpu",
    data: DataOpt = "arc-agi-1",
    json_path: JsonOpt = None,
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write an HTML report with plots of every variant."),
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    regime: RegimeOpt = None,
    warm_start: WarmOpt = None,
    seed_batch: SeedBatchOpt = False,
) -> None:
    """Probe the minimal base plus each suspect, the full config minus each suspect, and staged variants; name culprits only with an exact test."""

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from collapse_doctor.sweeps.ablate import run_ablation
    from collapse_doctor.sweeps.executors import make_executor
    from collapse_doctor.sweeps.gate import find_tool_table
    from collapse_doctor.sweeps.settings import AblationSettings

    check_writable(json_path, html_path, inputs=(config,))
    note_unused_keys(load_config(config, overrides))  # a bad file fails here, before any probe
    jobs = worker_count(jobs, executor)  # each probe trains on one thread (docs/speed.md: sweeps)
    regime = regime or find_tool_table().regime  # --regime wins over [tool.collapse-doctor] regime
    # No regime named: calibrate the minimal base against the full config first (sweeps/autoregime.py).
    auto_regime = regime is None and warm_start is None
    runner = make_executor(executor, jobs=jobs, ray_address=ray_address, device=device)
    on_interrupt(
        f"every probe that finished is in the cache ({cache_dir or '~/.cache/collapse-doctor/cache'}); run the same "
        "command again to resume from them"
    )

    with Progress(
        TextColumn("ablate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}", markup=False),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("ablate", total=None, last="")

        lines = ProbeLines("ablate")

        def progress(done: int, total: int, summary) -> None:
            lines.probe(summary, summary.tag, f"{done} of {total}")
            bar.update(
                task, completed=done, total=total, last=f"{summary.label}{' (cached)' if summary.cached else ''}"
            )

        settings = AblationSettings(
            config_path=config,
            overrides=(*regime_overrides(regime, warm_start), *overrides),
            preset=preset,
            seeds=tuple(range(seeds)),
            steps=steps,
            only=tuple(only or ()),
            skip=tuple(skip or ()),
            alpha=alpha,
            stage_epoch=stage_epoch,
            jobs=jobs,
            cache_dir=cache_dir,
            data=data,
            device=device,
            seed_batch=seed_batch,
            auto_regime=auto_regime,
        )
        with runner:  # its worker processes serve the calibration and the ablation, then exit
            result = run_ablation(settings=settings, progress=progress, executor=runner)
    chosen = result.auto_regime
    if chosen is not None and chosen.regime is None:
        emit(json_path, result.to_json, lambda: render_calibration(out, chosen.calibration))
        err.print(chosen.line(), highlight=False, soft_wrap=True)
        raise typer.Exit(3)
    if html_path is not None:
        write_text_output(html_path, ablation_html(result), "HTML")
    if chosen is not None:
        err.print(chosen.line(), highlight=False, soft_wrap=True)
    emit(json_path, result.to_json, lambda: render_ablation(out, result))


@app.command(
    "calibrate",
    epilog=EXIT_CODES_HELP
    + " calibrate: 0 a regime separates (and was confirmed); 3 none does (the whole table is printed).",
)
def calibrate_command(
    good: str = typer.Option(..., "--good", help="The known-good config: a YAML file, or a revision with --repo."),
    bad: str = typer.Option(..., "--bad", help="The known-bad config: a YAML file, or a revision with --repo."),
    repo_path: Optional[Path] = typer.Option(
        None, "--repo", help="Read --good and --bad as revisions of this git repository (nothing is checked out)."
    ),
    config_path: RepoConfigOpt = None,
    seeds: int = typer.Option(
        5, "--seeds", min=2, help="Seeds per config and regime (0..N-1); the confirmation uses N..2N-1."
    ),
    regimes: Optional[str] = typer.Option(
        None,
        "--regimes",
        help="Comma-separated regime names (default: the whole grid, cheapest first: warm-b8-p10, warm-b8-p20, "
        "warm-b8-p40, b8, b8-lr-sqrt, b8-lr-linear, b32, b32-lr-sqrt; with --seed-batch the cold ones only).",
    ),
    warm: bool = typer.Option(
        False,
        "--warm-start",
        help="Calibrate warm-start probes: phase 1 trains the good config, phase 2 the good (control) or the bad one.",
    ),
    alpha: float = typer.Option(
        0.05,
        "--alpha",
        help="Significance level of the one test: the bad config is measured in the first usable regime only.",
    ),
    min_delta: float = typer.Option(
        0.474, "--min-delta", help="Smallest Cliff's delta that counts as separation (0.474: a large effect)."
    ),
    confirm: bool = typer.Option(True, "--confirm/--no-confirm", help="Confirm the chosen regime on fresh seeds."),
    budget: Optional[float] = typer.Option(
        None, "--budget", help="Seconds of probing after which no further regime is started."
    ),
    write: Optional[Path] = typer.Option(
        None, "--write", help="Write the chosen regime as a regime file here (default: print it)."
    ),
    overrides: SetOpt = [],
    jobs: JobsOpt = None,
    cache_dir: CacheDirOpt = None,
    data: DataOpt = "arc-agi-1",
    json_path: JsonOpt = None,
    html_path: Optional[Path] = typer.Option(
        None, "--html", help="Write an HTML report: the answer, fg_auc per seed of every regime's two sides, plots."
    ),
    seed_batch: SeedBatchOpt = False,
) -> None:
    """Find a regime where the good config learns, then measure whether the bad one separates from it there."""
    from collapse_doctor.experiments.regimes import DEFAULT_GRID, GRID, by_name
    from collapse_doctor.sweeps.calibrate import run_calibration
    from collapse_doctor.sweeps.settings import CalibrationSettings

    if not 0 < alpha < 1:
        raise CollapseDoctorError(f"--alpha {alpha}: must lie in (0, 1)")
    if not 0 < min_delta <= 1:
        raise CollapseDoctorError(f"--min-delta {min_delta}: must lie in (0, 1]")
    if budget is not None and not budget > 0:
        raise CollapseDoctorError(f"--budget {budget:g}: expected a positive number of seconds")
    good_source, bad_source = _config_source(good, repo_path, config_path), _config_source(bad, repo_path, config_path)
    if _resolved(good_source, overrides) == _resolved(bad_source, overrides):
        raise CollapseDoctorError(
            f"--good {good} and --bad {bad} resolve to the same config: there is nothing to separate"
        )

    jobs = worker_count(jobs)
    # The default grid: the sharp warm regimes first (a seed batch cannot start warm: then the cold grid)
    grid = tuple(by_name(n.strip()) for n in regimes.split(",")) if regimes else GRID if seed_batch else DEFAULT_GRID
    check_writable(write, json_path, html_path, inputs=(Path(good), Path(bad)))  # fail before probing, not after
    on_interrupt(
        f"every probe that finished is in the cache ({cache_dir or '~/.cache/collapse-doctor/cache'}); run the same "
        "command again to resume from them"
    )
    lines = ProbeLines("calibrate")  # a plain line per probe when stderr is not a terminal
    with err.status("calibrate ...") as status:
        settings = CalibrationSettings(
            regimes=tuple(grid),
            seeds=seeds,
            alpha=alpha,
            min_delta=min_delta,
            warm=warm,
            confirm=confirm,
            budget=budget,
            overrides=tuple(overrides),
            data=data,
            jobs=jobs,
            cache_dir=cache_dir,
            seed_batch=seed_batch,
        )
        result = run_calibration(
            good_source,
            bad_source,
            settings=settings,
            progress=lambda text: status.update(f"calibrate: {text}"),
            on_probe=lambda done, total, summary: lines.probe(summary, summary.tag, f"{done} of {total} in this round"),
        )
    text = result.regime_file()
    if write is not None:
        if text is not None:
            write_text_output(write, text, "the regime file")
        else:
            write.unlink(missing_ok=True)
    if html_path is not None:
        write_text_output(html_path, calibration_html(result), "HTML")
    emit(json_path, result.to_json, lambda: render_calibration(out, result))
    if text is not None and write is None and (json_path is None or str(json_path) != "-"):
        out.print(text.rstrip("\n"), highlight=False, markup=False)
    elif text is not None and write is not None:
        err.print(f"regime written to {write}; use it with --regime {write}", highlight=False)
    raise typer.Exit(result.exit_code)


def _resolved(source, overrides: list[str]) -> dict:
    """A config source as the probe resolves it (YAML, --set), for telling two apart."""
    from collapse_doctor.config import config_to_dict, parse_config_text

    text = source.text if source.text is not None else Path(source.path).read_text(encoding="utf-8")
    return config_to_dict(parse_config_text(text, source=source.label, overrides=list(overrides)).config)


def _config_source(spec: str, repo_path: Optional[Path], config_path: Optional[str]):
    from collapse_doctor.sweeps.calibrate import ConfigSource

    if repo_path is None:
        path = Path(spec)
        if not path.is_file():
            raise CollapseDoctorError(f"{spec}: no such config file (give --repo to read it as a revision)")
        note_unused_keys(load_config(path))  # a bad file fails here, before any probe
        return ConfigSource(str(path), path=str(path))
    from collapse_doctor.config import parse_config_text
    from collapse_doctor.sweeps.gitrepo import config_at, open_repo

    config = config_at(open_repo(repo_path), spec, config_path)
    note_unused_keys(parse_config_text(config.text, source=config.label))
    return ConfigSource(config.label, text=config.text)
