"""The command that judges an existing log (scan) and how its result reads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from collapse_doctor.cli.app import EXIT_CODES_HELP, JsonOpt, app, check_writable, emit, err, out, write_text_output
from collapse_doctor.cli.format import VERDICT_STYLE, styled
from collapse_doctor.errors import CollapseDoctorError


@app.command("scan", epilog=EXIT_CODES_HELP)
def scan_command(
    metrics: Path = typer.Argument(
        ...,
        help="Metric log: JSONL (the probe's, the monitor's, any) or CSV/TSV, one row per step; or a TensorBoard run "
        "directory or tfevents file (the tensorboard extra), tags as columns.",
    ),
    mapping: list[str] = typer.Option(
        [],
        "--map",
        help="Read a canonical signal from another column, e.g. --map fg_acc=FG (repeatable; step, fg_acc, bg_acc, "
        "pred_bg_share, target_bg_share, loss, event).",
    ),
    percent: bool = typer.Option(
        False, "--percent", help="Accuracies and shares are percentages (0-100), not fractions."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Verdict thresholds, e.g. --set verdict.bg_excess=0.2 (repeatable)."
    ),
    json_path: JsonOpt = None,
    html_path: Optional[Path] = typer.Option(None, "--html", help="Write an HTML page with the plot of the run."),
) -> None:
    """The verdict for an existing run from its metric log, with the signals it used and what their absence limits."""
    from collapse_doctor.config import parse_config
    from collapse_doctor.judge.scan import parse_map, scan_log

    bad = [o for o in overrides if not o.strip().startswith("verdict.")]
    if bad:
        raise CollapseDoctorError(f"--set {bad[0]!r}: scan takes verdict.* keys only")
    cfg = parse_config({}, source="--set", overrides=overrides).config.verdict
    check_writable(json_path, html_path, inputs=(metrics,))
    with err.status(f"scan: reading {metrics} ...") as status:
        result = scan_log(
            metrics,
            mapping=parse_map(mapping),
            percent=percent,
            cfg=cfg,
            keep_rows=html_path is not None,
            progress=lambda done, total: status.update(f"scan: {done / 2**20:,.0f} of {total / 2**20:,.0f} MB read"),
        )
    if html_path is not None:
        write_text_output(html_path, scan_html(result), "HTML")
    emit(json_path, result.to_json, lambda: render_scan(out, result))
    raise typer.Exit(int(result.verdict.exit_code))


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
def render_scan(console: Console, result) -> None:
    v = result.verdict
    style = VERDICT_STYLE.get(v.label, "bold")
    onset = "" if v.onset_step is None else f" at step {v.onset_step}"
    if v.onset_after and v.onset_step is not None:
        after = v.onset_after
        onset += (
            f" ({after['steps_after']} steps after "
            f"{'the start' if after['event'] == 'start' else after['event'] + ' at step ' + str(after['step'])})"
        )
    console.print(
        styled(
            (v.label, f"bold {style}"), onset, (f"  {result.source}: {v.steps} steps, {result.events} events", "dim")
        ),
        highlight=False,
    )
    for reason in v.reasons:
        console.print(f"  {reason}", highlight=False)
    mapped = ", ".join(f"{name} <- {column}" if name != column else name for name, column in result.mapping.items())
    console.print(f"  signals used: {', '.join(v.signals_used) or 'none'}  (columns read: {mapped})", highlight=False)
    for limitation in v.limitations:
        console.print(styled("  ", ("limited:", "yellow"), f" {limitation}"), highlight=False)
    for note in result.notes:
        console.print(f"  note: {note}", style="dim", highlight=False)


def scan_html(result) -> str:
    from collapse_doctor.cli.html import page, plot

    metric_rows = [r for r in result.rows if "event" not in r]
    events = [r for r in result.rows if "event" in r]
    v = result.verdict
    text = (
        f"{v.label}" + (f" from step {v.onset_step}" if v.onset_step is not None else "") + "; " + "; ".join(v.reasons)
    )
    return page(
        "collapse-doctor scan",
        f"{result.source}: signals used {', '.join(v.signals_used)}",
        [(v.label, text, plot([(0, metric_rows)], events, result.source))],
    )
