"""The tool's errors and exit codes: one table, mirrored in the README and in `--help`."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    GOOD = 0  # a good verdict (HEALTHY, TRANSIENT), or a command that succeeded
    BAD = 1  # a bad verdict (COLLAPSED, FG_COLLAPSE, DIVERGED), or a failed check
    BAD_INPUT = 2  # usage, config, data or revision errors
    INCONCLUSIVE = 3  # the probe neither learned nor collapsed in its budget


class CollapseDoctorError(Exception):
    """An error the user can fix; the CLI prints each line of `problems` and exits with `exit_code`."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ConfigError(CollapseDoctorError):
    """A config file or override that cannot be loaded: every problem names the file and dotted key."""


class DataError(CollapseDoctorError):
    """A task file or data directory that is not ARC data."""


class GitError(CollapseDoctorError):
    """A repository or revision that cannot be read."""


class RunError(CollapseDoctorError):
    """A run that could not produce a result."""

    exit_code = ExitCode.BAD


def read_user_file(path: Path, what: str, error: type[CollapseDoctorError]) -> str:
    """A user's text file, or one line naming it: '<path>: no such <what> file' / 'cannot read <what>'."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None
