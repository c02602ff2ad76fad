"""A PyTorch Lightning callback over CollapseMonitor (optional extra: pip install 'collapse-doctor[lightning]').

    trainer = L.Trainer(callbacks=[CollapseCallback(num_classes=10)])

`training_step` returns a dict with the loss and, under `logits` and `target`, what the monitor counts
(or pass `extract=lambda outputs, batch: (logits, target)`). Steps close at optimizer-step boundaries
(accumulate_grad_batches respected); the signals are logged as `collapse/*`; once a collapse is
certain the trainer stops (`stop_on_collapse`), and `callback.verdict` holds the evidence.
"""

from __future__ import annotations

from collections.abc import Callable

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    try:
        import pytorch_lightning as pl
    except ImportError:
        raise ImportError("CollapseCallback needs Lightning: pip install 'collapse-doctor[lightning]'") from None

from collapse_doctor.judge.monitor import CollapseMonitor
from collapse_doctor.judge.signals import LIGHTNING_LOGGED
from collapse_doctor.judge.verdict import Verdict

LOGGED = LIGHTNING_LOGGED  # judge/signals.py


def _from_outputs(outputs, batch):
    if isinstance(outputs, dict) and "logits" in outputs and ("target" in outputs or "targets" in outputs):
        return outputs["logits"], outputs.get("target", outputs.get("targets"))
    raise ValueError(
        "CollapseCallback: training_step must return a dict with 'logits' and 'target' (or pass extract=...)"
    )


class CollapseCallback(pl.Callback):
    def __init__(
        self,
        num_classes: int,
        *,
        extract: Callable | None = None,
        stop_on_collapse: bool = True,
        log_metrics: bool = True,
        **monitor_kwargs,
    ):
        super().__init__()
        self.monitor = CollapseMonitor(num_classes, **monitor_kwargs)
        self.extract = extract or _from_outputs
        self.stop_on_collapse, self.log_metrics = stop_on_collapse, log_metrics

    def mark(self, event: str) -> None:
        """Announce an activation (e.g. from a LightningModule hook) so onsets are reported relative to it."""
        self.monitor.mark(event)

    @property
    def verdict(self) -> Verdict:
        return self.monitor.verdict

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        logits, target = self.extract(outputs, batch)
        self.monitor.add(logits, target)
        if (batch_idx + 1) % max(1, trainer.accumulate_grad_batches) != 0:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else None
        row = self.monitor.step_done(loss.detach().item() if hasattr(loss, "detach") else loss)
        if self.log_metrics:
            values = {f"collapse/{k}": float(row[k]) for k in LOGGED if row.get(k) is not None}
            if values:
                pl_module.log_dict(values, on_step=True, on_epoch=False, prog_bar=False)
        if self.monitor.collapsed and self.stop_on_collapse:
            trainer.should_stop = True
