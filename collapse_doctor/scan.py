"""scan: the verdict for a run that already happened, from its metric log.

Any JSONL (the probe's own, the monitor's, anyone's) or CSV/TSV with one row per step. Canonical
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
from collapse_doctor.verdict import Verdict, judge

CANONICAL = ("step", "fg_acc", "bg_acc", "pred_bg_share", "target_bg_share", "loss")
FRACTIONS = ("fg_acc", "bg_acc", "pred_bg_share", "target_bg_share")
REQUIRED = ("fg_acc", "bg_acc")


@dataclass
class ScanResult:
    source: str
    verdict: Verdict
    rows: list[dict]
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
VERDICT_FIELDS = ("valid_cells", "target_share", "fg_pred_share", "fg_pred_mode", "fg_pred_mode_share", "fg_pred_mode_target_share", "consecutive_nonfinite", "params_finite", "phase")
PROGRESS_BYTES = 50 * 2**20  # files larger than this report their progress


def read_table(path: Path, keep: set[str] | None = None, progress=None) -> tuple[list[dict], list[str]]:
    """Rows as dicts and the column names, from JSONL or CSV/TSV (by extension, else by content),
    streamed line by line. With `keep`, a row holds only those fields, so memory follows the signals
    the verdict needs, not the file's size. `progress(bytes_read, total)` is called for large files."""
    try:
        total = path.stat().st_size
        handle = path.open("r", encoding="utf-8", newline="")
    except FileNotFoundError:
        raise DataError(f"{path}: no such metrics file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read metrics: {exc}") from None
    with handle:
        try:
            head = handle.read(4096)
            handle.seek(0)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: cannot read metrics: {exc}") from None
        if not head.strip():
            raise DataError(f"{path}: the metrics file is empty")
        is_json = path.suffix.lower() in (".jsonl", ".json", ".ndjson") or (path.suffix.lower() not in (".csv", ".tsv") and head.lstrip().startswith("{"))
        report = progress if progress is not None and total > PROGRESS_BYTES else None
        rows: list[dict] = []
        columns: dict[str, None] = {}
        read = 0
        try:
            if is_json:
                for number, line in enumerate(handle, start=1):
                    read += len(line)
                    if report is not None and number % 20000 == 0:
                        report(read, total)
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{number}: not a JSON object ({exc.msg})") from None
                    if not isinstance(row, dict):
                        raise DataError(f"{path}:{number}: expected one JSON object per line")
                    columns.update(dict.fromkeys(row))
                    rows.append(row if keep is None else {k: v for k, v in row.items() if k in keep})
            else:
                first = head.splitlines()[0] if head.splitlines() else ""
                dialect = csv.excel_tab if path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first) else csv.excel
                reader = csv.DictReader(handle, dialect=dialect)
                if not reader.fieldnames:
                    raise DataError(f"{path}: no header row")
                columns = dict.fromkeys(c.strip() for c in reader.fieldnames)
                for number, r in enumerate(reader, start=1):
                    if report is not None and number % 20000 == 0:
                        report(handle.tell() if hasattr(handle, "tell") else 0, total)
                    row = {(k or "").strip(): v for k, v in r.items()}
                    rows.append(row if keep is None else {k: v for k, v in row.items() if k in keep})
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: cannot read metrics: {exc}") from None
    if report is not None:
        report(total, total)
    return rows, list(columns)


def _number(value, where: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None  # "nan" goes on to float(): NaN, an unknown step the verdict skips
    if isinstance(value, bool):
        raise DataError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a number, got {value!r}") from None


def normalise(rows: list[dict], columns: list[str], mapping: dict[str, str], source: str, percent: bool = False) -> tuple[list[dict], dict[str, str]]:
    """Rows in the verdict's vocabulary. Keeps every other column the probe's own JSONL carries."""
    used: dict[str, str] = {}
    for name in (*CANONICAL, "event"):
        column = mapping.get(name, name)
        if column in columns:
            used[name] = column
        elif name in mapping:
            raise DataError(f"{source}: --map {name}={column}: no column {column!r} (columns: {', '.join(columns)})")
    missing = [n for n in REQUIRED if n not in used]
    if missing:
        raise DataError(f"{source}: no {' or '.join(missing)} column (columns: {', '.join(columns[:20])}); map yours with --map {missing[0]}=COLUMN")
    out = []
    renamed = {column: name for name, column in used.items()}
    for index, raw in enumerate(rows):
        where = f"{source}: row {index + 1}"
        row = {k: v for k, v in raw.items() if k not in renamed and k not in CANONICAL and k != "event"}  # extra signals (valid_cells, shares) help the verdict
        step = _number(raw.get(used["step"]), f"{where}, column {used['step']}") if "step" in used else None
        row["step"] = int(step) if step is not None and not math.isnan(step) else index
        event = raw.get(used["event"]) if "event" in used else None
        if event not in (None, "") and str(event).strip():
            out.append({"step": row["step"], "event": str(event).strip()})
            if all(raw.get(used[n]) in (None, "") for n in REQUIRED):
                continue  # an event row only
        for name in ("fg_acc", "bg_acc", "pred_bg_share", "target_bg_share", "loss"):
            if name not in used:
                continue
            value = _number(raw.get(used[name]), f"{where}, column {used[name]}")
            if value is not None and name in FRACTIONS and not math.isnan(value):
                if percent:
                    value /= 100.0
                if not 0.0 <= value <= 1.0:
                    raise DataError(f"{where}, column {used[name]}: {value:g} is not a fraction in [0, 1]" + ("" if percent else " (percentages? add --percent)"))
            row[name] = value
        out.append(row)
    return out, used


def scan_log(path: str | Path, *, mapping: dict[str, str] | None = None, percent: bool = False, cfg: VerdictConfig | None = None, progress=None) -> ScanResult:
    path = Path(path)
    keep = {*CANONICAL, "event", *VERDICT_FIELDS, *(mapping or {}).values()}
    rows, columns = read_table(path, keep, progress)
    series, used = normalise(rows, columns, mapping or {}, str(path), percent)
    metric_rows = [r for r in series if "event" not in r]
    if not metric_rows:
        raise DataError(f"{path}: no metric rows (only events)")
    steps = [r["step"] for r in metric_rows if isinstance(r.get("step"), (int, float))]
    back = next((i for i in range(1, len(steps)) if steps[i] <= steps[i - 1]), None)
    if back is not None:
        raise DataError(
            f"{path}: step {steps[back]} (metric row {back + 1}) does not follow step {steps[back - 1]}: the steps repeat or go backwards, "
            "as when two runs are appended to one log; split the file into one run each"
        )
    notes = []
    if "step" not in used:
        notes.append("no step column: rows are numbered 0, 1, 2, ... in file order")
    if any(isinstance(r.get("fg_acc"), float) and math.isnan(r["fg_acc"]) for r in metric_rows):
        notes.append("some rows have NaN accuracy: they count as unknown")
    verdict = judge(series, cfg or VerdictConfig())
    return ScanResult(str(path), verdict, series, columns, used, sum(1 for r in series if "event" in r), notes)
