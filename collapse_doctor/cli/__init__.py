"""The command line: thin Typer commands over library functions, one error handler, one exit-code table.

app.py holds the app and what commands share; each module beside it holds a family of commands with
the rendering of their results (experiments, sweeps, gate, history, judge).
"""

from __future__ import annotations

import sys

from collapse_doctor.cli import experiments, gate, history, judge, sweeps  # noqa: F401  (registers the commands)
from collapse_doctor.cli.app import app, err, say_interrupted
from collapse_doctor.cli.format import styled
from collapse_doctor.errors import CollapseDoctorError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: user errors become one red line per problem and their exit code; usage errors exit 2."""
    try:
        app()
    except CollapseDoctorError as exc:
        for problem in exc.problems:
            err.print(styled(("error:", "red"), f" {problem}"), highlight=False, soft_wrap=True)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        say_interrupted()
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 130:  # Typer turns Ctrl-C inside a command into exit 130
            say_interrupted()
        raise
