"""Settings from `[tool.collapse-doctor]` in the nearest pyproject.toml: the config, seeds, jobs, regime and
probe:/verdict: keys that gate, ablate and bisect read when the command line does not say."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from collapse_doctor.errors import ConfigError


@dataclass
class ToolTable:
    path: Path | None  # the pyproject.toml it came from
    config: str | None = None  # config path, relative to the pyproject's directory
    seeds: int | None = None
    jobs: int | None = None
    overrides: list[str] = field(default_factory=list)  # probe.* and verdict.* keys as --set strings
    regime: str | None = None  # a regime name or file (relative to the pyproject's directory); --regime wins


def find_tool_table(start: Path | None = None) -> ToolTable:
    """The [tool.collapse-doctor] table of the nearest pyproject.toml at or above `start` (cwd); a
    nearer pyproject.toml without the table means none (it is the project's root)."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            try:
                table = tomllib.loads(candidate.read_text(encoding="utf-8")).get("tool", {}).get("collapse-doctor")
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{candidate}: not valid TOML: {exc}") from None
            return (
                _tool_table(candidate, table) if table is not None else ToolTable(None)
            )  # the project's own pyproject decides
    return ToolTable(None)


def _tool_table(path: Path, table: dict) -> ToolTable:
    out = ToolTable(path)
    for name, value in table.items():
        if name == "config":
            if not isinstance(value, str):
                raise ConfigError(f"{path}: [tool.collapse-doctor] config: expected a path string")
            out.config = value
        elif name in ("seeds", "jobs"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{path}: [tool.collapse-doctor] {name}: expected a positive integer, got {value!r}")
            setattr(out, name, value)
        elif name == "regime":
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{path}: [tool.collapse-doctor] regime: expected a regime name or file path")
            candidate = path.parent / value
            out.regime = str(candidate) if candidate.exists() or value.endswith((".yaml", ".yml")) else value
        elif name in ("probe", "verdict") and isinstance(value, dict):
            for key, item in value.items():
                override = f"{name}.{key}={_yaml_scalar(item)}"
                _check(path, name, key, override)
                out.overrides.append(override)
        else:
            raise ConfigError(
                f"{path}: [tool.collapse-doctor] {name}: unknown key (config, seeds, jobs, regime, [probe], [verdict])"
            )
    return out


def _check(path: Path, section: str, key: str, override: str) -> None:
    """A bad value here is the pyproject's, not a --set the user typed: say where it is."""
    from collapse_doctor.config import parse_config

    try:
        parse_config({}, source=str(path), overrides=[override])
    except ConfigError as exc:
        message = exc.problems[0] if getattr(exc, "problems", None) else str(exc)
        prefix = f"--set {section}.{key}: "
        reason = message[len(prefix) :] if message.startswith(prefix) else message
        raise ConfigError(f"{path}: [tool.collapse-doctor.{section}] {key}: {reason}") from None


def _yaml_scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
