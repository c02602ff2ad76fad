"""Rendering results for people: Rich tables on stdout. JSON output lives with each result's to_json."""

from __future__ import annotations

import yaml
from rich.console import Console
from rich.table import Table

from collapse_doctor.inspection import InspectReport


def render_inspect(console: Console, report: InspectReport) -> None:
    console.rule(f"[bold]{report.source}[/bold]" + (f"  (overrides: {', '.join(report.overrides)})" if report.overrides else ""))
    console.print(yaml.safe_dump(report.resolved, sort_keys=True, default_flow_style=False).rstrip(), highlight=False, markup=False)

    console.print()
    console.print(f"context path: [bold]{report.context_path}[/bold]   context injector: [bold]{report.injector}[/bold]")

    params = Table(title="Parameters per module", show_footer=False)
    params.add_column("module")
    params.add_column("parameters", justify="right")
    for name, count in report.parameters.items():
        if name != "total":
            params.add_row(name, f"{count:,}" if count else "[dim]not built[/dim]")
    params.add_row("[bold]total[/bold]", f"[bold]{report.parameters['total']:,}[/bold]")
    console.print(params)

    schedule = Table(title="Staging schedule")
    for column in ("module", "start key", "start epoch", "schedule"):
        schedule.add_column(column)
    for row in report.schedule:
        schedule.add_row(row.module, row.start_key, "-" if row.start_epoch is None else str(row.start_epoch), row.description)
    console.print(schedule)

    unused = Table(title=f"Keys the tool does not use ({len(report.unused_keys)})")
    unused.add_column("key")
    unused.add_column("why")
    for item in report.unused_keys:
        unused.add_row(item.key, item.reason)
    console.print(unused)
    console.print(f"[dim]defaulted keys ({len(report.defaulted_keys)}):[/dim] " + (", ".join(report.defaulted_keys) or "none"), highlight=False)
