"""TensorBoard event files as a metric table for scan: a run directory or one `tfevents` file.

Scalars are grouped into one row per step (`step` plus a field per tag); text summaries under the tag
`event` become event rows. The monitor's own tags (`collapse/fg_acc`, ...) are read without their
prefix, so its run directory scans with no `--map`; other tags are mapped as CSV columns are
(`--map fg_acc=train/fg_acc`). Records are streamed: a step's row is complete when a later step
starts, so memory does not grow with the file. Needs the `tensorboard` extra.
"""

from __future__ import annotations

from pathlib import Path

from collapse_doctor.errors import DataError
from collapse_doctor.judge.signals import MONITOR_TAGS

TENSORBOARD_PREFIX = "collapse/"  # what CollapseMonitor writes; read without it
TENSORBOARD_SIGNALS = MONITOR_TAGS  # judge/signals.py
EVENT_FILE = "events.out.tfevents"


def is_tensorboard(path: Path) -> bool:
    return path.is_dir() or EVENT_FILE in path.name


def event_files(path: Path) -> list[Path]:
    """The event files of one run, in the order they were written (a restart starts a new file)."""
    if not path.exists():
        raise DataError(f"{path}: no such run directory or event file")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.glob(f"{EVENT_FILE}*") if p.is_file())
    if files:
        return files
    runs = sorted({p.parent for p in path.rglob(f"{EVENT_FILE}*") if p.is_file()})
    if not runs:
        raise DataError(f"{path}: no TensorBoard event files ({EVENT_FILE}*) in this directory or below")
    if len(runs) > 1:
        raise DataError(
            f"{path}: {len(runs)} runs below this directory "
            f"({', '.join(str(r) for r in runs[:5])}{', ...' if len(runs) > 5 else ''}); scan one of them"
        )
    return sorted(p for p in runs[0].glob(f"{EVENT_FILE}*") if p.is_file())


def _tag(tag: str) -> str:
    return tag[len(TENSORBOARD_PREFIX) :] if tag.startswith(TENSORBOARD_PREFIX) else tag


class TensorBoardTable:
    """The same reading interface as scan.Table: iterate rows, `columns` holds every tag seen so far."""

    is_json = True  # rows are dicts with their own fields, as a JSONL's (no CSV header row)

    def __init__(self, path: Path, keep: set[str] | None = None, progress=None):
        try:
            from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # noqa: F401
        except ImportError:
            raise DataError(
                f"{path}: reading TensorBoard event files needs the tensorboard extra: pip install "
                "'collapse-doctor[tensorboard]'"
            ) from None
        self.path, self.keep, self.files = path, keep, event_files(path)
        self.columns: dict[str, None] = {"step": None}  # every record has its step
        self.total = sum(f.stat().st_size for f in self.files)
        self.report = progress if progress is not None and self.total > 50 * 2**20 else None

    def _records(self):
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
        from tensorboard.util import tensor_util

        done = 0
        for number, file in enumerate(self.files):
            records = 0
            try:
                for event in EventFileLoader(str(file)).Load():
                    records += 1
                    for value in event.summary.value:
                        kind = value.WhichOneof("value")
                        plugin = value.metadata.plugin_data.plugin_name
                        if kind == "simple_value":
                            yield int(event.step), _tag(value.tag), float(value.simple_value), False
                        elif kind == "tensor" and plugin == "scalars":
                            yield int(event.step), _tag(value.tag), float(tensor_util.make_ndarray(value.tensor)), False
                        elif kind == "tensor" and plugin == "text":
                            text = tensor_util.make_ndarray(value.tensor).reshape(-1)
                            words = " ".join(
                                t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in text
                            )
                            yield int(event.step), _tag(value.tag.removesuffix("/text_summary")), words, True
            except DataError:
                raise
            except Exception as exc:  # a truncated or corrupt record: name the file
                raise DataError(f"{file}: cannot read TensorBoard events ({type(exc).__name__}: {exc})") from None
            if not records:  # the loader stops quietly at a corrupt record; a file with none is not an event file
                raise DataError(f"{file}: no TensorBoard record could be read (empty, corrupt, or not an event file)")
            done += file.stat().st_size
            if self.report is not None:
                self.report(done, self.total)

    def __iter__(self):
        row: dict | None = None
        texts: list[tuple[int, str, str]] = []
        for step, tag, value, is_text in self._records():
            self.columns[tag] = None
            if is_text:
                if tag == "event" or (self.keep is not None and tag in self.keep):
                    texts.append((step, tag, value))  # other text (notes, hparams) is not a signal
                continue
            if row is not None and step != row["step"]:
                yield from self._flush(row, texts)
                row = None
            if row is None:
                row = {"step": step}
            row[tag] = value
        if row is not None:
            yield from self._flush(row, texts)
        yield from self._flush(None, texts)

    def _flush(self, row: dict | None, texts: list) -> list[dict]:
        """A step's text rows (those of its step or earlier) come before its metric row, as probe logs have them."""
        due = [t for t in texts if row is None or t[0] <= row["step"]]
        texts[:] = [t for t in texts if t not in due]
        out = [{"step": step, tag: text} for step, tag, text in due]
        if row is not None:
            out.append(row if self.keep is None else {k: v for k, v in row.items() if k in self.keep or k == "step"})
        return out
