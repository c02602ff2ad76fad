"""The tool's errors and exit codes: one table, mirrored in the README and in `--help`."""

from __future__ import annotations

from enum import IntEnum


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
