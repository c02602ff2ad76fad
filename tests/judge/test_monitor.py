"""The monitor in a plain PyTorch loop, the Lightning callback with a real Trainer, and scan on logs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from collapse_doctor import CollapseDetected, CollapseMonitor
from collapse_doctor.config import default_config_path, load_config
from collapse_doctor.experiments.probe import run_probe
from collapse_doctor.judge.counts import CellCounts
from collapse_doctor.judge.scan import scan_log

C = 4  # classes; 0 is background


def grids(seed: int, n: int = 16, size: int = 6):
    """One-hot input grids and the identity target: about 70 % background, as ARC outputs are ~55 %."""
    g = torch.Generator().manual_seed(seed)
    target = torch.where(
        torch.rand(n, size, size, generator=g) < 0.7, 0, torch.randint(1, C, (n, size, size), generator=g)
    )
    return nn.functional.one_hot(target, C).permute(0, 3, 1, 2).float(), target


def train(model, monitor, steps: int, lr: float, mark_at: int | None = None):
    """A plain loop: the two monitor lines are the constructor and `monitor.update`."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        if step == mark_at:
            monitor.mark("new module on")
        x, y = grids(step)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.update(logits, y, loss)


def test_a_model_that_learns_is_healthy():
    torch.manual_seed(0)
    monitor = CollapseMonitor(num_classes=C)
    train(nn.Conv2d(C, C, 1), monitor, 40, lr=2.0)
    verdict = monitor.verdict
    assert verdict.good and not monitor.collapsed  # HEALTHY, or TRANSIENT if the first steps over-predict background
    assert (
        verdict.final["fg_acc"] > 0.9 and abs(verdict.final["pred_bg_share"] - verdict.final["target_bg_share"]) < 0.05
    )


def _background_model():
    model = nn.Conv2d(C, C, 1)
    with torch.no_grad():
        model.weight.mul_(0.01)
        model.bias.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]))  # background everywhere, from the first step
    return model


def test_a_collapse_calls_back_once_then_raises_after_the_early_stop_length():
    seen = []
    monitor = CollapseMonitor(num_classes=C, early_stop_after=10, on_collapse=seen.append, raise_on_collapse=True)
    with pytest.raises(CollapseDetected) as caught:
        train(_background_model(), monitor, 100, lr=0.0, mark_at=3)
    assert caught.value.verdict.label == "COLLAPSED" and len(seen) == 1
    assert monitor.step == 10  # certain after 10 collapsed steps, not at the end of the run
    assert caught.value.verdict.onset_step == 0


def test_onsets_are_reported_relative_to_marked_activations():
    monitor = CollapseMonitor(num_classes=C, early_stop_after=None)
    model = nn.Conv2d(C, C, 1)
    torch.manual_seed(0)
    train(model, monitor, 15, lr=2.0)
    monitor.mark("hyperlora on")
    with torch.no_grad():
        model.bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0]))
    train(model, monitor, 15, lr=0.0)
    verdict = monitor.verdict
    assert verdict.label == "COLLAPSED" and verdict.onset_step == 15
    assert verdict.onset_after == {"event": "hyperlora on", "step": 15, "steps_after": 0}


def test_counts_from_the_user_and_a_background_class_other_than_zero():
    monitor = CollapseMonitor(num_classes=C, early_stop_after=None)
    for _ in range(10):
        monitor.update_counts(fg_correct=0, fg_total=300, bg_correct=700, bg_total=700, pred_bg=1000)
    assert monitor.verdict.label == "COLLAPSED"
    counts = CellCounts(C, background=2)
    target = torch.tensor([2, 2, 2, 1])
    counts.add(nn.functional.one_hot(torch.tensor([2, 2, 2, 2]), C).float(), target)
    row = counts.row()
    assert (
        row["pred_bg_share"] == 1.0
        and row["target_bg_share"] == 0.75
        and row["fg_acc"] == 0.0
        and row["target_share"][0] == 0.75
    )


def test_the_monitor_log_scans_to_the_same_verdict(tmp_path):
    log = tmp_path / "run.jsonl"
    monitor = CollapseMonitor(num_classes=C, early_stop_after=None, log_path=log)
    train(_background_model(), monitor, 30, lr=0.0, mark_at=5)
    monitor.close()
    scanned = scan_log(log)
    assert scanned.verdict.to_json() == monitor.verdict.to_json()


@pytest.mark.slow
def test_scanning_a_probe_jsonl_gives_the_probe_verdict(tmp_path):
    # OLD with the background weight capped at 2.0 (the class-weight fixtures' bad config): it collapses within
    # a few steps, so the verdict compared has an onset, at a tenth of the cost of the embedded NEW config
    overrides = ["training.loss_mode=weighted_stablemax", "training.bg_weight_cap=2.0", "probe.steps=12"]
    result = run_probe(load_config(default_config_path("old"), overrides), out_dir=tmp_path)
    assert result.verdict.label == "COLLAPSED" and result.verdict.onset_step is not None
    scanned = scan_log(result.metrics_path)
    assert (scanned.verdict.label, scanned.verdict.onset_step, scanned.verdict.final) == (
        result.verdict.label,
        result.verdict.onset_step,
        result.verdict.final,
    )


def test_scan_of_a_csv_with_other_names_uses_what_it_has_and_says_so(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "epoch,FG,BG,event\n"
        + "".join(f"{i},{40 if i < 5 else 0},{70 if i < 5 else 100},{'lora on' if i == 5 else ''}\n" for i in range(20))
    )

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "collapse_doctor", "scan", str(path), *a], capture_output=True, text=True
        )  # noqa: E731

    result = run("--map", "step=epoch", "--map", "fg_acc=FG", "--map", "bg_acc=BG", "--percent", "--json", "-")
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["verdict"] == "COLLAPSED" and data["onset_step"] == 5
    assert data["signals_used"] == ["fg_acc", "bg_acc"] and any("BG accuracy alone" in x for x in data["limitations"])
    assert data["evidence"]["onset_after"]["event"] == "lora on"
    result = run("--map", "fg_acc=FG", "--map", "bg_acc=BG")  # percentages without --percent
    assert result.returncode == 2 and "not a fraction" in result.stderr and "--percent" in result.stderr
    result = run()
    assert result.returncode == 2 and "no fg_acc or bg_acc column" in result.stderr and "Traceback" not in result.stderr


def test_scan_rejects_a_corrupt_jsonl_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 0, "fg_acc": 0.5, "bg_acc": 0.5}\n{"step": 1, "fg_acc": \n')
    result = subprocess.run(
        [sys.executable, "-m", "collapse_doctor", "scan", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 2 and f"{path}:2" in result.stderr


# --------------------------------------------------------------------------------------------------
# Lightning
# --------------------------------------------------------------------------------------------------
def _lightning_module(collapse: bool):
    L = pytest.importorskip("lightning.pytorch")

    class Grids(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _background_model() if collapse else nn.Conv2d(C, C, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            logits = self.net(x)
            return {"loss": nn.functional.cross_entropy(logits, y), "logits": logits, "target": y}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0 if collapse else 2.0)

        def train_dataloader(self):
            data = [grids(i, n=1) for i in range(64)]
            return torch.utils.data.DataLoader([(x[0], y[0]) for x, y in data], batch_size=8)

    return L, Grids()


@pytest.mark.parametrize("collapse", [False, True])
def test_the_lightning_callback_with_a_real_trainer(collapse, tmp_path):
    torch.manual_seed(0)
    L, module = _lightning_module(collapse)
    from collapse_doctor.judge.lightning import CollapseCallback

    callback = CollapseCallback(
        num_classes=C, early_stop_after=5 if collapse else 40
    )  # the learner over-predicts background for its first steps
    trainer = L.Trainer(
        max_steps=40,
        max_epochs=10,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(module)
    if collapse:
        assert callback.verdict.label == "COLLAPSED" and callback.monitor.collapsed
        assert trainer.global_step < 40  # stopped once the collapse was certain
    else:
        assert callback.verdict.good and trainer.global_step == 40
    assert "collapse/fg_acc" in trainer.callback_metrics


def test_scan_refuses_a_log_whose_steps_repeat(tmp_path):
    import json as _json

    from collapse_doctor.errors import DataError
    from collapse_doctor.judge.scan import scan_log

    rows = [{"step": s, "fg_acc": 0.3, "bg_acc": 0.8} for s in range(10)]
    path = tmp_path / "twice.jsonl"
    path.write_text("".join(_json.dumps(r) + "\n" for r in rows + rows))
    with pytest.raises(DataError, match="repeat or go backwards"):
        scan_log(path)


def test_the_monitor_refuses_what_it_cannot_count():
    import numpy as np

    from collapse_doctor.judge.monitor import CollapseMonitor

    for kwargs in ({"check_every": 0}, {"early_stop_after": -1}, {"background": 12}):
        with pytest.raises(ValueError):
            CollapseMonitor(10, **kwargs)
    m = CollapseMonitor(10)
    logits = torch.zeros(2, 10, 3, 3)
    with pytest.raises(ValueError, match="classes are 0..9"):
        m.update(logits, torch.full((2, 3, 3), 12))
    with pytest.raises(ValueError, match="expected \\(2, 3, 3\\)"):
        m.update(logits, torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class indices"):
        m.update(logits, torch.zeros(2, 3, 3))
    with pytest.raises(TypeError, match="torch tensors"):
        m.update(logits, np.zeros((2, 3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="non-negative"):
        m.update_counts(fg_correct=-5, fg_total=3, bg_correct=1, bg_total=2)
    with pytest.raises(ValueError, match="exceed"):
        m.update_counts(fg_correct=5, fg_total=3, bg_correct=1, bg_total=2)
    m.update(logits, torch.full((2, 3, 3), -100))  # the ignore index is not a class: fine
    m.close()
    with pytest.raises(RuntimeError, match="closed"):
        m.update(logits, torch.zeros(2, 3, 3, dtype=torch.long))


def _collapsing_steps(monitor, steps=30, collapse_at=10):
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        if step == collapse_at:
            monitor.mark("lora on")
        target = torch.randint(0, 3, (4, 8, 8), generator=g)
        predicted = target if step < collapse_at else torch.zeros_like(target)
        monitor.update(torch.nn.functional.one_hot(predicted, 3).permute(0, 3, 1, 2).float(), target, loss=1.0)


def test_scan_reads_the_run_directory_a_monitor_wrote_with_a_summary_writer(tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    from collapse_doctor.judge.scan import scan_log

    writer = SummaryWriter(str(tmp_path / "run"))
    monitor = CollapseMonitor(num_classes=3, early_stop_after=None, writer=writer)
    _collapsing_steps(monitor)
    writer.close()
    scanned = scan_log(tmp_path / "run")
    assert (
        (scanned.verdict.label, scanned.verdict.onset_step, scanned.verdict.steps)
        == (monitor.verdict.label, monitor.verdict.onset_step, 30)
        == ("COLLAPSED", 10, 30)
    )
    assert [(a.event, a.step) for a in scanned.verdict.activations] == [("lora on", 10)]
    assert scanned.mapping["pred_bg_share"] == "pred_bg_share" and "no step column" not in " ".join(scanned.notes)
    single = scan_log(next((tmp_path / "run").glob("events.out.tfevents*")))  # one event file, not the directory
    assert single.verdict.label == "COLLAPSED"


def test_scan_maps_tensorboard_tags_like_csv_columns(tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "run"))
    for step in range(12):
        writer.add_scalar("train/FG", 40.0 if step < 4 else 0.0, step)
        writer.add_scalar("train/BG", 90.0 if step < 4 else 100.0, step)
        writer.add_text("notes", "not a signal", step)
    writer.close()

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "collapse_doctor", "scan", str(tmp_path / "run"), *a, "--json", "-"],
            capture_output=True,
            text=True,
        )  # noqa: E731

    unmapped = run()
    assert (
        unmapped.returncode == 2
        and "--map fg_acc=COLUMN" in unmapped.stderr
        and "train/FG" in unmapped.stderr
        and "Traceback" not in unmapped.stderr
    )
    mapped = run("--map", "fg_acc=train/FG", "--map", "bg_acc=train/BG", "--percent")
    data = json.loads(mapped.stdout)
    assert mapped.returncode == 1 and data["verdict"] == "COLLAPSED" and data["onset_step"] == 4 and data["steps"] == 12


def test_scan_refuses_corrupt_event_files_and_directories_of_several_runs(tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    for name in ("a", "b"):
        writer = SummaryWriter(str(tmp_path / "runs" / name))
        writer.add_scalar("collapse/fg_acc", 0.5, 0)
        writer.close()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "events.out.tfevents.1.host").write_bytes(b"not an event file")
    for path, words in (
        (tmp_path / "runs", "2 runs below"),
        (tmp_path / "bad", "no TensorBoard record could be read"),
        (tmp_path / "empty", "no such metrics file"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "collapse_doctor", "scan", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_the_monitor_refuses_a_writer_that_cannot_write_scalars():
    with pytest.raises(TypeError, match="expected a SummaryWriter"):
        CollapseMonitor(num_classes=3, writer=object())
