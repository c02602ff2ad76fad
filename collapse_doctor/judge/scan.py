"""scan: the verdict for a run that already happened, from its metric log.

Any JSONL (the probe's own, the monitor's, anyone's) or CSV/TSV with one row per step, or a
TensorBoard run directory / event file (tfevents.py: tags are the columns). Canonical
columns: step, fg_acc, bg_acc, pred_bg_share, target_bg_share, loss (fractions in [0, 1]); `--map
fg_acc=FG` reads another column name; rows with a non-empty `event` column mark activations. The
verdict is `verdict.judge`, the same code the probe, gate and monitor use; it says which signals it
rested on and what their absence limits.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from collapse_doctor.config import VerdictConfig
from collapse_doctor.errors import DataError
from collapse_doctor.judge.signals import (
    COLUMNS,
    FRACTION_COLUMNS,
    VERDICT_REQUIRED,
    VERDICT_SIGNALS,
    VERDICT_SUPPORT,
)
from collapse_doctor.judge.tfevents import TensorBoardTable, is_tensorboard
from collapse_doctor.judge.verdict import SeriesJudge, Verdict

CANONICAL = COLUMNS  # judge/signals.py
FRACTIONS = FRACTION_COLUMNS
REQUIRED = VERDICT_REQUIRED


@dataclass
class ScanResult:
    source: str
    verdict: Verdict
    rows: list[dict]  # the plotted signals of every row, when scan_log was asked to keep them (--html)
    columns: list[str]  # as found in the file
    mapping: dict[str, str]  # canonical name -> the file's column it was read from
    events: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "verdict": self.verdict.label,
            "onset_step": self.verdict.onset_step,
            "good": self.verdict.good,
            "exit_code": int(self.verdict.exit_code),
            "reasons": self.verdict.reasons,
            "signals_used": self.verdict.signals_used,
            "limitations": self.verdict.limitations,
            "mapping": self.mapping,
            "columns": self.columns,
            "steps": self.verdict.steps,
            "events": self.events,
            "notes": self.notes,
            "evidence": self.verdict.to_json(),
        }


def parse_map(items: list[str]) -> dict[str, str]:
    """--map fg_acc=FG (repeatable) -> {"fg_acc": "FG"}; only canonical names (and event) may be mapped."""
    mapping = {}
    for item in items:
        name, sep, column = item.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise DataError(f"--map {item!r}: expected CANONICAL=COLUMN, e.g. fg_acc=FG")
        if name not in (*CANONICAL, "event"):
            raise DataError(f"--map {item!r}: {name} is not one of {', '.join((*CANONICAL, 'event'))}")
        mapping[name] = column
    return mapping


# Fields the verdict reads besides the canonical ones; a streamed row keeps only these (and mapped columns).
VERDICT_FIELDS = (*(n for n in (*VERDICT_SIGNALS, *VERDICT_SUPPORT) if n not in COLUMNS), "phase")
PROGRESS_BYTES = 50 * 2**20  # files larger than this report their progress


class Table:
    """The rows of a JSONL or CSV/TSV file (by extension, else by content), read one line at a time.
    `columns` holds every column seen so far (a JSONL row may bring new ones); with `keep`, a row holds
    only those fields. `progress(bytes_read, total)` is called on files larger than PROGRESS_BYTES."""

    def __init__(self, path: Path, keep: set[str] | None = None, progress=None):
        self.path, self.keep = path, keep
        try:
            self.total = path.stat().st_size
            with path.open("rb") as raw:
                magic = raw.read(2)
            if magic == b"\x1f\x8b":
                raise DataError(f"{path}: the file is gzip-compressed; decompress it first (gunzip -k {path.name})")
            with path.open("r", encoding="utf-8-sig", newline="") as handle:  # -sig: a byte-order mark is no text
                head = handle.read(4096)
        except FileNotFoundError:
            raise DataError(f"{path}: no such metrics file") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: cannot read metrics: {exc}") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read metrics: {exc}") from None
        if not head.strip():
            raise DataError(f"{path}: the metrics file is empty")
        suffix = path.suffix.lower()
        self.is_json = suffix in (".jsonl", ".json", ".ndjson") or (
            suffix not in (".csv", ".tsv") and head.lstrip().startswith("{")
        )
        first = head.splitlines()[0] if head.splitlines() else ""
        self.dialect = csv.excel_tab if suffix == ".tsv" or ("\t" in first and "," not in first) else csv.excel
        self.report = progress if progress is not None and self.total > PROGRESS_BYTES else None
        self.columns: dict[str, None] = {}
        if not self.is_json:  # a CSV's columns are known from its header, before any row is read
            with path.open("r", encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle, dialect=self.dialect), None)
            if not header:
                raise DataError(f"{path}: no header row")
            self.columns = dict.fromkeys(c.strip() for c in header)

    def __iter__(self):
        try:
            with self.path.open("r", encoding="utf-8-sig", newline="") as handle:
                yield from (self._json_rows(handle) if self.is_json else self._csv_rows(handle))
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.path}: cannot read metrics: {exc}") from None
        if self.report is not None:
            self.report(self.total, self.total)

    def _kept(self, row: dict) -> dict:
        return row if self.keep is None else {k: v for k, v in row.items() if k in self.keep}

    def _json_rows(self, handle):
        read = 0
        for number, line in enumerate(handle, start=1):
            read += len(line)
            if self.report is not None and number % 20000 == 0:
                self.report(read, self.total)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{self.path}:{number}: not a JSON object ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{self.path}:{number}: expected one JSON object per line")
            self.columns.update(dict.fromkeys(row))
            yield self._kept(row)

    def _csv_rows(self, handle):
        reader = csv.DictReader(handle, dialect=self.dialect)
        for number, r in enumerate(reader, start=1):
            if self.report is not None and number % 20000 == 0:
                self.report(handle.tell(), self.total)
            yield self._kept({(k or "").strip(): v for k, v in r.items()})


def _number(value, where: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None  # "nan" goes on to float(): NaN, an unknown step the verdict skips
    if isinstance(value, bool):
        raise DataError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a number, got {value!r}") from None


def _fraction(value: float, percent: bool, where: str) -> float:
    """A share or accuracy as a fraction; the message says what was found and what was expected."""
    if math.isinf(value):
        raise DataError(f"{where}: {value} is not finite; expected a fraction in [0, 1] (nan marks a missing value)")
    if percent:
        if not 0.0 <= value <= 100.0:
            raise DataError(f"{where}: {value:g} is not a percentage in [0, 100] (--percent reads every share as one)")
        return value / 100.0
    if not 0.0 <= value <= 1.0:
        hint = " (percentages? add --percent)" if 1.0 < value <= 100.0 else ""
        raise DataError(f"{where}: {value:g} is not a fraction in [0, 1]{hint}")
    return value


def used_columns(columns: list[str], mapping: dict[str, str], source: str) -> dict[str, str]:
    """Canonical name -> the column it is read from; refuses a mapped column that is not there, or no
    column for a required signal."""
    used: dict[str, str] = {}
    for name in (*CANONICAL, "event"):
        column = mapping.get(name, name)
        if column in columns:
            used[name] = column
        elif name in mapping:
            raise DataError(f"{source}: --map {name}={column}: no column {column!r} (columns: {', '.join(columns)})")
    missing = [n for n in REQUIRED if n not in used]
    if missing:
        raise DataError(
            f"{source}: no {' or '.join(missing)} column (columns: {', '.join(columns[:20])}); map yours with --map "
            f"{missing[0]}=COLUMN"
        )
    return used


def canonical_columns(mapping: dict[str, str]) -> dict[str, str]:
    """Canonical name (and event) -> the column it is read from, whether or not the file has it."""
    return {name: mapping.get(name, name) for name in (*CANONICAL, "event")}


def normalise_row(raw: dict, index: int, column: dict[str, str], source: str, percent: bool = False) -> list[dict]:
    """One file row in the verdict's vocabulary: an event row, a metric row, or both (an event on a
    metric row). Keeps every other field the probe's own JSONL carries (valid_cells, shares).
    `column` is canonical_columns(mapping), computed once per file."""
    renamed = set(column.values())
    where = f"{source}: row {index + 1}"
    row = {k: v for k, v in raw.items() if k not in renamed and k not in CANONICAL and k != "event"}
    step = _number(raw.get(column["step"]), f"{where}, column {column['step']}")
    row["step"] = int(step) if step is not None and not math.isnan(step) else index
    out = []
    event = raw.get(column["event"])
    if event not in (None, "") and str(event).strip():
        out.append({"step": row["step"], "event": str(event).strip()})
        if all(raw.get(column[n]) in (None, "") for n in REQUIRED):
            return out  # an event row only
    for name in CANONICAL[1:]:  # every column but the step
        if column[name] not in raw:
            continue
        value = _number(raw.get(column[name]), f"{where}, column {column[name]}")
        if value is not None and name in FRACTIONS and not math.isnan(value):
            value = _fraction(value, percent, f"{where}, column {column[name]}")
        row[name] = value
    out.append(row)
    return out


PLOT_FIELDS = ("step", "event", *CANONICAL[1:])


def scan_log(
    path: str | Path,
    *,
    mapping: dict[str, str] | None = None,
    percent: bool = False,
    cfg: VerdictConfig | None = None,
    progress=None,
    keep_rows: bool = False,
) -> ScanResult:
    """Judge a log in one streaming pass: memory stays flat as the file grows. With keep_rows, the
    plotted signals of every row are kept (for --html), which is the one part that grows."""
    path, mapping = Path(path), mapping or {}
    keep = {*CANONICAL, "event", *VERDICT_FIELDS, *mapping.values()}
    table = TensorBoardTable(path, keep, progress) if is_tensorboard(path) else Table(path, keep, progress)
    cfg = cfg or VerdictConfig()
    judge = SeriesJudge(cfg)
    kept: list[dict] = []
    metric_rows = events = 0
    last_step = None
    nan_rows = no_step = False
    column = canonical_columns(mapping)
    if not table.is_json:
        used_columns(list(table.columns), mapping, str(path))  # a CSV's header is known before its rows
    for index, raw in enumerate(table):
        if column["step"] not in raw:
            no_step = True
        for row in normalise_row(raw, index, column, str(path), percent):
            if "event" in row:
                events += 1
            else:
                metric_rows += 1
                if last_step is not None and row["step"] <= last_step:
                    raise DataError(
                        f"{path}: step {row['step']} (metric row {metric_rows}) does not follow step {last_step}: the "
                        "steps repeat or go backwards, "
                        "as when two runs are appended to one log; split the file into one run each"
                    )
                last_step = row["step"]
                nan_rows = nan_rows or (isinstance(row.get("fg_acc"), float) and math.isnan(row["fg_acc"]))
            judge.add(row)
            if keep_rows:
                kept.append({k: v for k, v in row.items() if k in PLOT_FIELDS})
    used = used_columns(list(table.columns), mapping, str(path))
    if not metric_rows:
        raise DataError(f"{path}: no metric rows (only events)")
    needed = max(cfg.final_window, cfg.min_consecutive)
    if metric_rows < needed:
        raise DataError(
            f"{path}: {metric_rows} metric row{'s' if metric_rows != 1 else ''}: a verdict needs at least {needed} "
            f"(its final window, verdict.final_window = {cfg.final_window})"
        )
    notes = []
    if "step" not in used:
        notes.append("no step column: rows are numbered 0, 1, 2, ... in file order")
    elif no_step:
        notes.append("some rows have no step: they are numbered by their place in the file")
    if nan_rows:
        notes.append("some rows have NaN accuracy: they count as unknown")
    return ScanResult(str(path), judge.verdict(), kept, list(table.columns), used, events, notes)
