"""Per-step cell counts: the signals of a step (FG/BG accuracy, predicted vs target background share,
the prediction mode on foreground cells) from logits and targets, for the bundled trainer and for any
user's loop (the monitor). Counting is a few bincounts on the logits' device; one small copy per step.

Rows put the background class first in every per-class vector (`pred_share`, `target_share`,
`fg_pred_share`): the verdict reads index 0 as background whatever the class index is.
"""

from __future__ import annotations

import numpy as np
import torch


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


class CellCounts:
    """Counts pooled over the valid cells of one step (all its micro-batches)."""

    def __init__(self, num_classes: int, *, background: int = 0, ignore: tuple[int, ...] = (-100,)):
        if not 0 <= background < num_classes:
            raise ValueError(f"background class {background} is not one of the {num_classes} classes")
        self.c, self.background, self.ignore = num_classes, background, tuple(ignore)
        order = [background] + [k for k in range(num_classes) if k != background]  # background first
        self.order = np.array(order)
        self.pred = np.zeros(num_classes, dtype=np.int64)  # predictions per class over valid cells
        self.target = np.zeros(num_classes, dtype=np.int64)
        self.correct = np.zeros(num_classes, dtype=np.int64)  # correct cells per target class
        self.pred_on_fg = np.zeros(num_classes, dtype=np.int64)  # predictions on FG-target cells

    @torch.no_grad()
    def add(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """logits (B, C, ...) with the class dimension second, target (B, ...) of class indices."""
        valid = (target >= 0) & (target < self.c)
        for value in self.ignore:
            valid &= target != value
        pred, tgt = logits.argmax(dim=1)[valid], target[valid]
        self.add_predictions(pred, tgt)

    @torch.no_grad()
    def add_predictions(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Predicted and target class indices of valid cells only (same shape)."""
        c = self.c
        self.pred += torch.bincount(pred.flatten(), minlength=c)[:c].cpu().numpy()
        self.target += torch.bincount(target.flatten(), minlength=c)[:c].cpu().numpy()
        self.correct += torch.bincount(target[pred == target], minlength=c)[:c].cpu().numpy()
        self.pred_on_fg += torch.bincount(pred[target != self.background], minlength=c)[:c].cpu().numpy()

    def row(self) -> dict:
        pred, target, correct, on_fg = (a[self.order] for a in (self.pred, self.target, self.correct, self.pred_on_fg))
        cells = int(target.sum())
        fg_cells = cells - int(target[0])
        fg_preds = int(on_fg.sum())
        mode = int(on_fg.argmax()) if fg_preds else None  # position in background-first order
        return {
            "fg_acc": _ratio(int(correct[1:].sum()), fg_cells),
            "bg_acc": _ratio(int(correct[0]), int(target[0])),
            "pred_bg_share": _ratio(int(pred[0]), cells),
            "target_bg_share": _ratio(int(target[0]), cells),
            "pred_share": [_ratio(int(v), cells) for v in pred],
            "target_share": [_ratio(int(v), cells) for v in target],
            "fg_pred_mode": int(self.order[mode]) if mode is not None else None,  # the class index itself
            "fg_pred_mode_share": _ratio(int(on_fg[mode]), fg_preds) if mode is not None else None,
            "fg_pred_mode_target_share": _ratio(int(target[mode]), fg_cells) if mode else None,
            "fg_pred_share": [_ratio(int(v), fg_preds) for v in on_fg],
            "colours_predicted": int((pred > 0).sum()),
            "colours_present": int((target > 0).sum()),
            "valid_cells": cells,
        }
