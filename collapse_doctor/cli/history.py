"""Commands over a repository's history (bisect, diff) and how their results read."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from collapse_doctor.cli.app import (
    EXIT_CODES_HELP,
    CacheDirOpt,
    DataOpt,
    ExecutorOpt,
    JobsOpt,
    JsonOpt,
    PresetOpt,
    ProbeLines,
    RayAddressOpt,
    RegimeOpt,
    RepoConfigOpt,
    SetOpt,
    SweepDeviceOpt,
    WarmOpt,
    app,
    check_writable,
    emit,
    err,
    out,
    regime_overrides,
    worker_count,
    write_json_output,
    write_text_output,
)
from collapse_doctor.cli.format import DECISION_STYLE, styled
from collapse_doctor.cli.sweep_reports import bisect_html
from collapse_doctor.errors import CollapseDoctorError


@app.command(
    "bisect",
    epilog=EXIT_CODES_HELP
    + " bisect: 0 answer found (or --scan done); 1 an endpoint behaved the other way or --cmd aborted; 3 no single "
    "answer (undecided endpoint, skipped commits).",
)
def bisect_command(
    from_rev: str = typer.Option(..., "--from", help="A good revision (hash, branch, tag), e.g. 2a50f2d."),
    to_rev: str = typer.Option("HEAD", "--to", help="A bad revision (default HEAD)."),
    repo_path: Path = typer.Option(
        Path("."),
        "--repo",
        help="The git repository (default: the current directory). Nothing in it is checked out or written.",
    ),
    config_path: RepoConfigOpt = None,
    overrides: SetOpt = [],
    preset: PresetOpt = "tiny",
    steps: Optional[int] = typer.Option(
        None, "--steps", min=1, help="Optimizer steps per probe (default: the preset's)."
    ),
    seeds: int = typer.Option(
        4,
        "--seeds",
        min=1,
        help="Seeds per commit (4: the fewest at which the rank test can reach p < 0.05); more while undecided.",
    ),
    max_seeds: int = typer.Option(
        9,
        "--max-seeds",
        min=1,
        help="Most seeds per commit; at this cap a strict majority decides, else the commit is skipped.",
    ),
    scan: bool = typer.Option(
        False, "--scan", help="Probe every distinct config instead of bisecting, and list every good/bad transition."
    ),
    minimize: bool = typer.Option(
        False,
        "--minimize",
        help="Reduce the first bad commit's key changes to the smallest set that still collapses (ddmin).",
    ),
    command: Optional[str] = typer.Option(
        None,
        "--cmd",
        help="Judge each commit with this shell command in a temporary checkout: exit 0 good, 125 skip, 1-127 bad, "
        "128+ abort.",
    ),
    command_timeout: Optional[float] = typer.Option(
        None, "--cmd-timeout", help="Seconds before --cmd is stopped (counts as bad, exit 124)."
    ),
    jobs: JobsOpt = None,
    cache_dir: CacheDirOpt = None,
    device: SweepDeviceOpt = "cpu",
    data: DataOpt = "arc-agi-1",
    json_path: JsonOpt = None,
    html_path: Optional[Path] = typer.Option(
        None, "--html", help="Write an HTML report: the answer, fg_auc per seed of every commit judged, plots."
    ),
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    regime: RegimeOpt = None,
    warm_start: WarmOpt = None,
    by: Optional[str] = typer.Option(
        None,
        "--by",
        help="measure (default): the primary measure (fg_auc) per seed on the scale of the endpoints: collapsed "
        "when it sits with the bad endpoint, degraded when worse than the good endpoint only (one-sided exact rank "
        "test, p < 0.05 and Cliff's delta >= 0.474; needs --seeds 4+); verdict: by verdict class.",
    ),
) -> None:
    """Find the first commit whose config makes training collapse: endpoints first, then a binary search
    over first-parent commits, each judged on adaptive seeds."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from collapse_doctor.judge.measures import MeasureRule
    from collapse_doctor.sweeps.bisect import BisectResult, BisectSettings, CommandAborted, SeedPolicy, run_bisect
    from collapse_doctor.sweeps.executors import make_executor

    if command_timeout is not None and command_timeout <= 0:
        raise CollapseDoctorError(f"--cmd-timeout {command_timeout:g}: expected a positive number of seconds")
    by = by or ("measure" if command is None else "verdict")  # --cmd judges by exit status
    if by not in ("verdict", "measure"):
        raise CollapseDoctorError(f"--by {by!r}: expected verdict or measure")
    from collapse_doctor.sweeps.gate import find_tool_table

    regime = regime or find_tool_table(repo_path).regime  # --regime wins over [tool.collapse-doctor] regime
    # No regime named: calibrate on the endpoints first (sweeps/autoregime.py); --cmd judges no probes.
    auto_regime = regime is None and warm_start is None and command is None
    check_writable(json_path, html_path)
    jobs = worker_count(jobs, executor)  # each probe trains on one thread (docs/speed.md: sweeps)
    runner = make_executor(executor, jobs=jobs, ray_address=ray_address, device=device)

    result = BisectResult("interrupted", "", str(repo_path), config_path, from_rev, to_rev)

    def finish() -> None:
        if json_path is not None:
            write_json_output(json_path, result.to_json())
        if html_path is not None and result.judgements:
            write_text_output(html_path, bisect_html(result), "HTML")

    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("bisect: reading the history", total=None)

            lines = ProbeLines("bisect")

            said: set[str] = set()

            def progress(status) -> None:
                for note in status.notes:
                    if note not in said:  # before any probe: a shallow clone or untested edits change the question
                        said.add(note)
                        bar.console.print(
                            Text.assemble(("note:", "yellow"), f" {note}"), highlight=False, soft_wrap=True
                        )
                lines.status(status)
                left = (
                    ""
                    if status.commits_left is None
                    else f"{status.commits_left} commits left"
                    + ("" if status.rounds_left is None else f" (~{status.rounds_left} rounds)")
                    + ", "
                )
                bar.update(
                    task,
                    description=f"{status.phase}: {left}{status.probes_run} probes run, {status.probes_cached} cached "
                    f" {status.current}",
                )

            settings = BisectSettings(
                good_rev=from_rev,
                bad_rev=to_rev,
                repo_path=repo_path,
                config_path=config_path,
                overrides=(*regime_overrides(regime, warm_start), *overrides),
                preset=preset,
                steps=steps,
                policy=SeedPolicy(seeds, max_seeds),
                scan=scan,
                minimize=minimize,
                command=command,
                command_timeout=command_timeout,
                jobs=jobs,
                cache_dir=cache_dir,
                data=data,
                device=device,
                rule=MeasureRule() if by == "measure" else None,
                auto_regime=auto_regime,
            )
            with runner:  # its worker processes serve every round, then exit
                run_bisect(settings, progress=progress, result=result, executor=runner)
    except CommandAborted as exc:
        result.outcome, result.message = "aborted", exc.problems[0]
    except CollapseDoctorError as exc:
        result.outcome, result.message = "error", exc.problems[0]
        finish()
        raise
    except KeyboardInterrupt:
        result.outcome, result.message = (
            "interrupted",
            "interrupted; probes that finished are in the cache, a rerun resumes from them",
        )
        finish()
        raise
    finish()
    if json_path is None or str(json_path) != "-":
        render_bisect(out, result)
    raise typer.Exit(result.exit_code)


@app.command("diff", epilog=EXIT_CODES_HELP)
def diff_command(
    rev_a: str = typer.Argument(..., help="Older revision (hash, branch, tag)."),
    rev_b: str = typer.Argument("HEAD", help="Newer revision (default HEAD)."),
    config_path: RepoConfigOpt = None,
    repo_path: Path = typer.Option(Path("."), "--repo", help="The git repository (default: the current directory)."),
    json_path: JsonOpt = None,
) -> None:
    """Side-by-side table of the config keys that differ between two revisions, read from git objects (nothing is checked out)."""
    from collapse_doctor.config.diff import diff_raw, parse_raw
    from collapse_doctor.sweeps.gitrepo import choose_config_path, config_at, open_repo, resolve

    repo = open_repo(repo_path)
    a, b = resolve(repo, rev_a), resolve(repo, rev_b)
    path = choose_config_path(repo, b, config_path)  # the bad side's path names the file on both sides
    sides = [config_at(repo, rev, path) for rev in (rev_a, rev_b)]
    changes = diff_raw(*(parse_raw(side.text, side.label) for side in sides))
    emit(
        json_path,
        lambda: {"a": a.hexsha, "b": b.hexsha, "config": path, "changes": [c.to_json() for c in changes]},
        lambda: render_diff(out, f"{rev_a} ({a.hexsha[:7]})", f"{rev_b} ({b.hexsha[:7]})", changes),
    )


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
def render_diff(console: Console, label_a: str, label_b: str, changes) -> None:
    table = Table(title=f"config keys: {label_a} -> {label_b}")
    for column in ("section", "key", label_a, label_b, "kind"):
        table.add_column(column)
    section = None
    for c in changes:
        table.add_row(
            c.section if c.section != section else "",
            styled(c.key, "" if c.known else (" (unknown)", "dim")),
            str(c.old),
            str(c.new),
            c.kind,
        )
        section = c.section
    console.print(table if changes else f"no key differs between {label_a} and {label_b}")


def render_bisect(console: Console, result) -> None:
    """The commits judged, the answer (or why there is none), and what it cost."""
    ran = result.ran
    judged_by = (
        f"--cmd {ran.get('command')!r}"
        if result.judge == "cmd"
        else f"{ran.get('preset')} preset, {ran.get('seeds')} seeds (up to {ran.get('max_seeds')})"
        + (f", overrides {' '.join(ran['overrides'])}" if ran.get("overrides") else "")
    )
    if result.good and result.bad:
        console.rule(
            styled(
                (f"{result.method} {result.good.short}..{result.bad.short}", "bold"),
                f"  {len(result.commits)} commits, config {result.config_path or '-'}",
            )
        )
        console.print(f"judged by: {judged_by}", highlight=False, soft_wrap=True)
        for note in result.notes:
            console.print(Text.assemble(("note:", "yellow"), f" {note}"), highlight=False, soft_wrap=True)
        if result.auto_regime is not None:
            console.print(result.auto_regime.line(), highlight=False, soft_wrap=True)
        if ran.get("by") == "measure":
            console.print(
                f"classified by: {result.scale.text() if result.scale else ran.get('rule')}",
                highlight=False,
                soft_wrap=True,
            )
    if result.judgements:
        table = Table(title="commits judged (a judgement covers every commit with the same resolved config)")
        # On the endpoints' scale the class says it all; the search's own good/bad (which side of the first
        # collapse) beside it read as a contradiction ("good", "degraded").
        columns = ["commit", "date", "subject", "commits covered", "evidence", "fg_auc per seed"]
        columns.append("class" if result.classes else "decision")
        for column in columns:
            table.add_column(column)
        for index, judgement in sorted(result.judgements.items()):
            segment = result.segments[index]
            first = segment.first.info
            style = DECISION_STYLE.get(judgement.decision, "")
            auc = ", ".join(
                f"{v:.3f}" for s in judgement.summaries if (v := (s.measures or {}).get("fg_auc")) is not None
            )
            row = [
                first.short,
                first.date[:10],
                first.subject[:48],
                str(len(segment.commits)),
                judgement.counts_text(),
                auc or "-",
            ]
            if result.classes:
                kind = result.classes.get(index) or "undecided"
                row.append(Text(kind, style={"collapsed": "red", "degraded": "yellow", "good": "green"}.get(kind, "")))
            else:
                row.append(Text(judgement.decision, style=style))
            table.add_row(*row)
        console.print(table)
        _render_missed(console, result)
    skipped = result.untestable()
    if skipped:
        console.print(
            styled(
                (f"untestable commits ({len(skipped)}), skipped:", "yellow"),
                " " + "; ".join(f"{c.info.short} ({c.problem})" for c in skipped),
            ),
            highlight=False,
            soft_wrap=True,
        )
    for t in result.transitions:
        console.print(
            styled(
                (t.direction, "bold"), f" at {t.after.info.short} {t.after.info.subject} (after {t.before.info.short})"
            ),
            highlight=False,
        )
        if t.changes:
            render_diff(console, t.before.info.short, t.after.info.short, t.changes)
    if result.outcome == "found":
        c, p = result.first_bad.info, result.parent.info
        console.print(
            styled(
                ("first collapsed commit" if result.scale is not None else "first bad commit", "bold red"),
                f" {c.hexsha}\n  {c.date}  {c.author}\n  {c.subject}\n  parent {p.short} ({p.subject})",
            ),
            highlight=False,
        )
        unreadable = [(x.info.short, why) for x in (result.parent, result.first_bad) if (why := _config_problem(x))]
        if not result.changes and unreadable:
            console.print(
                "the config change cannot be shown: "
                + "; ".join(f"{short}'s config could not be read ({why})" for short, why in unreadable),
                highlight=False,
                soft_wrap=True,
            )
        else:
            render_diff(console, p.short, c.short, result.changes)
        if result.files_changed:
            console.print(f"files it changed: {', '.join(result.files_changed)}", highlight=False)
        _render_evidence(console, result)  # the collapse's evidence, before any earlier degradation
        if result.scale is not None:
            _render_degradation(console, result)
    else:
        if result.outcome == "no_regime" and result.auto_regime is not None and result.auto_regime.calibration:
            from collapse_doctor.cli.sweep_reports import render_calibration

            render_calibration(console, result.auto_regime.calibration)
        style = "green" if result.outcome == "scanned" else "yellow" if result.exit_code in (2, 3) else "red"
        console.print(styled((result.outcome, f"bold {style}"), f": {result.message}"), highlight=False)
    if result.outcome != "found":
        _render_evidence(console, result)
    if result.minimization is not None:
        m = result.minimization
        keys = ", ".join(f"{c.key}: {c.old} -> {c.new}" for c in m.changes)
        console.print(
            styled(("smallest collapsing change", "bold"), f" (ddmin, {len(m.trials)} trials): {keys}"), highlight=False
        )
        if m.confirmation is not None:
            console.print(
                styled(
                    f"  confirmation on fresh seeds: {m.confirmation.counts_text()} -> ",
                    "confirmed" if m.confirmed else ("not confirmed", "yellow"),
                ),
                highlight=False,
            )
    probes = result.probes
    if result.judge == "probe":
        saved = f", early stopping saved {probes.steps_saved} steps" if probes.steps_saved else ""
        console.print(
            f"cost: {probes.run} probes run ({probes.seconds:.0f} s of probe time{saved}), {probes.cached} from "
            f"the cache; {result.rounds} commits judged after the endpoints",
            style="dim",
            highlight=False,
        )
    console.print(result.limitations, style="dim", highlight=False)


def _render_missed(console: Console, result) -> None:
    """A commit called good by measure is good at its seed count, which can miss a real regression: say
    how large, for the fewest seeds any such commit had (docs/validity.md section 4)."""
    from collapse_doctor.judge.measures import MeasureRule

    reference = result.judgements.get(0)
    if not result.classes or reference is None:
        return
    counts = [
        len(j.summaries)
        for index, j in result.judgements.items()
        if index != 0 and result.classes.get(index) == "good" and j.summaries
    ]
    if counts:
        text = MeasureRule().missed_text(min(counts), len(reference.summaries))
        console.print(Text.assemble(("note:", "yellow"), f" {text}"), highlight=False, soft_wrap=True)


def _render_evidence(console: Console, result) -> None:
    if not result.evidence or "text" not in result.evidence:
        return
    console.print(f"evidence: {result.evidence['text']}", highlight=False)
    seeds = result.evidence.get("good_side", {}).get("seeds", []) + result.evidence.get("bad_side", {}).get("seeds", [])
    # The p that decided: the rank test's when judged by measure, Fisher's on the labels otherwise.
    measure = result.evidence.get("measure") or {}
    p = measure.get("p") if measure.get("p") is not None else result.evidence["p_value"]
    if seeds and result.outcome == "found" and p >= 0.05:
        console.print(
            styled(
                ("note:", "yellow"),
                f" p = {p:.3g}: this many seeds cannot rule out chance at 0.05; --seeds 5 or more can.",
            ),
            highlight=False,
        )


def _render_degradation(console: Console, result) -> None:
    """The earlier answer of a measure bisect: the first commit worse than the good endpoint, if any."""
    if result.first_degraded is None:
        console.print("no commit before the collapse was worse than the good endpoint (degraded)", highlight=False)
        return
    c, p = result.first_degraded.info, result.degraded_parent.info
    console.print(
        styled(
            ("first degraded commit", "bold yellow"),
            f" (worse than the good endpoint, not collapsed) {c.hexsha}\n  {c.subject}\n  parent {p.short}",
        ),
        highlight=False,
    )
    render_diff(console, p.short, c.short, result.degraded_changes)
    if result.degraded_evidence and "text" in result.degraded_evidence:
        console.print(f"evidence: {result.degraded_evidence['text']}", highlight=False)


def _config_problem(commit) -> str | None:
    """Why a commit's config cannot be diffed (missing, malformed), or None when it can."""
    from collapse_doctor.config.diff import parse_raw
    from collapse_doctor.errors import CollapseDoctorError

    if commit.text is None:
        return commit.problem or "no config file"
    try:
        parse_raw(commit.text, commit.info.short)
    except CollapseDoctorError as exc:
        return exc.problems[0]
    return None
