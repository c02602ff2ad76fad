"""The command line: thin Typer commands over library functions, one error handler, one exit-code table."""

from __future__ import annotations

import json
import sys
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
    "2 bad input (usage, config, data, revision); 3 INCONCLUSIVE."
)

app = typer.Typer(
    name="collapse-doctor",
    help="Find out why a training run collapses to the background class, and which change caused it.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()  # results
err = Console(stderr=True)  # progress, warnings, errors

ConfigArg = typer.Argument(None, help="YAML config with model:/training:/data:/device: sections; default: the embedded seed NEW config.", show_default=False)
SetOpt = typer.Option([], "--set", help="Override a key, e.g. --set model.hidden_dim=64 (repeatable).")


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
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON to this path ('-' for stdout)."),
    strict: bool = typer.Option(False, "--strict", help="Refuse keys the tool does not know instead of listing them."),
) -> None:
    """Show what a YAML builds: resolved config, unused and defaulted keys, parameters per module, staging schedule."""
    from collapse_doctor.inspection import inspect_config
    from collapse_doctor.report import render_inspect

    report = inspect_config(load_config(config, overrides, strict=strict))
    if json_path is not None:
        _write_json(json_path, report.to_json())
        if str(json_path) == "-":
            return
    render_inspect(out, report)


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, sort_keys=False)
    if str(path) == "-":
        sys.stdout.write(text + "\n")
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise CollapseDoctorError(f"{path}: cannot write JSON: {exc.strerror or exc}") from None


def main() -> None:
    """Entry point: user errors become one red line per problem and their exit code; usage errors exit 2."""
    try:
        app()
    except CollapseDoctorError as exc:
        for problem in exc.problems:
            err.print(f"[red]error:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
        sys.exit(int(exc.exit_code))
