"""The detector inside any PyTorch training loop: two lines.

    monitor = CollapseMonitor(num_classes=10)            # background class 0, ignore index -100
    ...
    monitor.update(logits, targets)                       # once per optimizer step (or add() per micro-batch, then step())

`monitor.verdict` is the probe's verdict on the steps so far (the same `verdict.judge`), with onset and
evidence; `monitor.mark("hyperlora on")` records an activation so onsets are reported relative to it;
`on_collapse` is called (and `CollapseDetected` raised when `raise_on_collapse`) once a collapse is
certain in the sense of early stopping: still open after `early_stop_after` steps (docs/verdicts.md).
Users who count cells themselves call `update_counts(...)` instead.

The cost per step is a few bincounts on the logits' device and one small copy; the verdict over a
trailing window is recomputed every `check_every` steps (bench/monitor_overhead.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

from collapse_doctor.config import VerdictConfig
from collapse_doctor.judge.counts import CellCounts
from collapse_doctor.judge.tfevents import TENSORBOARD_PREFIX, TENSORBOARD_SIGNALS
from collapse_doctor.judge.verdict import Verdict, early_stop, judge


class CollapseDetected(RuntimeError):
    """Raised by a monitor with raise_on_collapse once a collapse is certain."""

    def __init__(self, verdict: Verdict):
        self.verdict = verdict
        super().__init__(f"{verdict.label} from step {verdict.onset_step}: " + "; ".join(verdict.reasons))


class CollapseMonitor:
    def __init__(
        self,
        num_classes: int,
        *,
        background: int = 0,
        ignore_index: int | None = -100,
        verdict: VerdictConfig | None = None,
        early_stop_after: int | None = 40,
        check_every: int = 1,
        on_collapse: Callable[[Verdict], None] | None = None,
        raise_on_collapse: bool = False,
        log_path: str | Path | None = None,
        writer=None,
    ):
        """num_classes: the logits' class dimension; background: the dominant class; ignore_index:
        target value of cells that are not cells (padding); early_stop_after: steps a collapse must
        last to count as certain (None: never); log_path: append every row as JSONL (scan reads it);
        writer: a TensorBoard SummaryWriter (or anything with add_scalar and add_text) that gets each
        step's signals as `collapse/<signal>` scalars and each mark as `collapse/event` text (scan
        reads the run directory)."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes={num_classes!r}: expected an integer >= 2")
        if isinstance(background, bool) or not isinstance(background, int) or not 0 <= background < num_classes:
            raise ValueError(f"background={background!r}: expected a class index in 0..{num_classes - 1}")
        if early_stop_after is not None and (
            isinstance(early_stop_after, bool) or not isinstance(early_stop_after, int) or early_stop_after < 1
        ):
            raise ValueError(f"early_stop_after={early_stop_after!r}: expected a positive integer or None")
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise ValueError(f"check_every={check_every!r}: expected a positive integer")
        self.num_classes, self.background = num_classes, background
        self.ignore = (ignore_index,) if ignore_index is not None else ()
        self.cfg = verdict or VerdictConfig()
        self.early_stop_after, self.check_every = early_stop_after, check_every
        self.closed = False
        self.on_collapse, self.raise_on_collapse = on_collapse, raise_on_collapse
        self.rows: list[dict] = []  # metric rows and event rows, in step order
        self.step = 0
        self.collapse: Verdict | None = None  # set once, when a collapse became certain
        self._pending = CellCounts(num_classes, background=background, ignore=self.ignore)
        if writer is not None and not (
            callable(getattr(writer, "add_scalar", None)) and callable(getattr(writer, "add_text", None))
        ):
            raise TypeError(
                f"writer of type {type(writer).__name__}: expected a SummaryWriter (add_scalar and add_text)"
            )
        self.writer = writer
        self._log_path = Path(log_path) if log_path is not None else None
        self._log = self._log_path.open("a", encoding="utf-8") if self._log_path is not None else None
        self._pending_nonfinite = False  # this step's logits held inf or NaN
        self._nonfinite_run = 0  # steps in a row with non-finite logits or loss

    def __getstate__(self) -> dict:
        """Pickles (for a DataLoader worker, a checkpoint) without the open log file: it reopens, appending,
        at the next row."""
        state = dict(self.__dict__)
        state["_log"] = None
        return state

    # ---- feeding it ----------------------------------------------------------------------------
    def add(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Count one micro-batch: logits (B, C, ...) with classes in dimension 1, target (B, ...)."""
        self._open()
        if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
            raise TypeError(
                f"logits and target must be torch tensors, got {type(logits).__name__} and {type(target).__name__} "
                "(torch.as_tensor converts numpy arrays)"
            )
        if logits.dim() < 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits of shape {tuple(logits.shape)}: expected the {self.num_classes} classes in dimension 1"
            )
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target of dtype {target.dtype}: expected integer class indices")
        if logits.device != target.device:
            raise ValueError(f"logits on {logits.device} and target on {target.device}: move both to one device first")
        expected = (logits.shape[0], *logits.shape[2:])
        if tuple(target.shape) != expected:
            raise ValueError(
                f"target of shape {tuple(target.shape)}: expected {expected} (logits {tuple(logits.shape)} without "
                "the class dimension)"
            )
        valid = (
            ~torch.isin(target, torch.tensor(self.ignore, dtype=target.dtype, device=target.device))
            if self.ignore
            else torch.ones_like(target, dtype=torch.bool)
        )
        bad = valid & ((target < 0) | (target >= self.num_classes))
        if bool(bad.any()):
            raise ValueError(
                f"target holds {int(target[bad][0])}: classes are 0..{self.num_classes - 1}"
                + (f" (ignore_index {self.ignore[0]})" if self.ignore else "")
            )
        if not bool(torch.isfinite(logits.detach()).all()):
            self._pending_nonfinite = True  # argmax of NaN logits would read as a prediction: count it as divergence
        self._pending.add(logits.detach(), target.detach())

    def step_done(self, loss: float | torch.Tensor | None = None) -> dict:
        """Close the step: its row joins the series and the collapse check runs."""
        self._open()
        loss = _loss_value(loss)
        row = {"step": self.step, **self._pending.row()}
        if loss is not None:
            row["loss"] = loss
        bad = self._pending_nonfinite or (loss is not None and not math.isfinite(loss))
        self._nonfinite_run = self._nonfinite_run + 1 if bad else 0
        row["consecutive_nonfinite"] = self._nonfinite_run
        self._pending_nonfinite = False
        self._pending = CellCounts(self.num_classes, background=self.background, ignore=self.ignore)
        return self._append(row)

    def update(self, logits: torch.Tensor, target: torch.Tensor, loss: float | torch.Tensor | None = None) -> dict:
        """One optimizer step in one call: count and close the step."""
        _loss_value(loss)  # a bad loss fails before the step is counted
        self.add(logits, target)
        return self.step_done(loss)

    def update_counts(
        self,
        *,
        fg_correct: int,
        fg_total: int,
        bg_correct: int,
        bg_total: int,
        pred_bg: int | None = None,
        loss: float | None = None,
    ) -> dict:
        """A step from counts the user computed: correct and total FG-target and BG-target cells, and
        (better) how many cells were predicted background."""
        self._open()
        counts = {
            "fg_correct": fg_correct,
            "fg_total": fg_total,
            "bg_correct": bg_correct,
            "bg_total": bg_total,
            **({"pred_bg": pred_bg} if pred_bg is not None else {}),
        }
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r}: expected a non-negative integer count")
        if fg_correct > fg_total or bg_correct > bg_total:
            raise ValueError(f"correct counts exceed totals: fg {fg_correct}/{fg_total}, bg {bg_correct}/{bg_total}")
        if pred_bg is not None and pred_bg > fg_total + bg_total:
            raise ValueError(f"pred_bg={pred_bg} exceeds the {fg_total + bg_total} cells")
        cells = fg_total + bg_total
        row = {
            "step": self.step,
            "fg_acc": fg_correct / fg_total if fg_total else None,
            "bg_acc": bg_correct / bg_total if bg_total else None,
            "target_bg_share": bg_total / cells if cells else None,
            "valid_cells": cells,
        }
        if pred_bg is not None and cells:
            row["pred_bg_share"] = pred_bg / cells
        loss = _loss_value(loss)
        if loss is not None:
            row["loss"] = loss
        return self._append(row)

    def mark(self, event: str) -> None:
        """Record an activation (a module switched on, a loss added) at the current step."""
        self._open()
        row = {"step": self.step, "event": str(event)}
        self.rows.append(row)
        self._write(row)

    # ---- reading it ----------------------------------------------------------------------------
    @property
    def verdict(self) -> Verdict:
        """The verdict on every step so far."""
        return judge(self.rows, self.cfg)

    @property
    def collapsed(self) -> bool:
        return self.collapse is not None

    def _open(self) -> None:
        if self.closed:
            raise RuntimeError("this CollapseMonitor is closed: a row given now would be lost; make a new monitor")

    def close(self) -> None:
        self.closed = True
        if self._log is not None:
            self._log.close()
            self._log = None

    # ---- internals -----------------------------------------------------------------------------
    def _append(self, row: dict) -> dict:
        self.rows.append(row)
        self._write(row)
        self.step += 1
        if self.collapse is None and self.early_stop_after is not None and self.step % self.check_every == 0:
            self._check()
        return row

    def _check(self) -> None:
        # Only the trailing window can hold an episode that is still open: judge it, not the whole run.
        window = self.early_stop_after + 2 * self.cfg.min_consecutive + 64
        tail = self.rows[-4 * window :]
        metric_rows = [r for r in tail if "event" not in r][-window:]
        first = metric_rows[0]["step"] if metric_rows else 0
        recent = [r for r in tail if r["step"] >= first]
        if early_stop(recent, self.cfg, self.early_stop_after) is None:
            return
        self.collapse = self.verdict
        if self.on_collapse is not None:
            self.on_collapse(self.collapse)
        if self.raise_on_collapse:
            raise CollapseDetected(self.collapse)

    def _write(self, row: dict) -> None:
        if self._log is None and self._log_path is not None and not self.closed:
            self._log = self._log_path.open("a", encoding="utf-8")  # after unpickling
        if self._log is not None:
            self._log.write(json.dumps(row) + "\n")
            self._log.flush()
        if self.writer is not None:
            if "event" in row:
                self.writer.add_text(f"{TENSORBOARD_PREFIX}event", row["event"], row["step"])
            for name in TENSORBOARD_SIGNALS:
                if row.get(name) is not None:
                    self.writer.add_scalar(f"{TENSORBOARD_PREFIX}{name}", row[name], row["step"])


def _loss_value(loss) -> float | None:
    """A loss as a float: a number or a one-element tensor; anything else is a TypeError naming it."""
    if loss is None:
        return None
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise TypeError(f"loss of shape {tuple(loss.shape)}: expected a number or a one-element tensor")
        return float(loss.detach().item())
    if isinstance(loss, bool) or not isinstance(loss, (int, float)):
        raise TypeError(f"loss={loss!r}: expected a number or a one-element tensor")
    return float(loss)
