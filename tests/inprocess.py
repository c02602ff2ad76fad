"""Running the command line in this process, as the installed entry point runs it (`cli.main`), with
pytest's capsys: the exit code, stdout and stderr."""

from __future__ import annotations

import sys

from collapse_doctor import cli


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    argv = sys.argv
    sys.argv = ["collapse-doctor", *args]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err
