"""What the monitor costs inside a training loop, as a fraction of a training step of the bundled model
(issue 9's goal: under 2 %). Times `CollapseMonitor.update` (bincounts, the per-step row, the
collapse check over the trailing window) on the logits and targets of real probe steps, against the
step itself, at the tiny and small presets; and the update alone on full-size logits (75 x 10 x 30 x 30).

    python bench/monitor_overhead.py [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from collapse_doctor.config import load_config
from collapse_doctor.data.arc import load_tasks, usable_tasks
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.judge.monitor import CollapseMonitor
from collapse_doctor.train.trainer import Trainer


def per_step(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = load_tasks()
    print(f"{'preset':8} {'train step s':>12} {'monitor.update ms':>18} {'check every':>11} {'fraction':>9}")
    for preset in ("tiny", "small"):
        config, _ = apply_preset(load_config(None), PRESETS[preset])
        trainer = Trainer(
            config, usable_tasks(tasks, config.data, config.model.max_grid_size), seed=0, steps_per_epoch=10**6
        )
        trainer.train_step()
        step_time = per_step(trainer.train_step, max(3, args.steps // (1 if preset == "tiny" else 4)))
        batch = trainer.stream.batch(0, config.training.batch_size)
        with torch.no_grad():
            logits = trainer.model(
                batch.query_input, batch.support_inputs, batch.support_outputs, batch.pair_mask
            ).logits
        for check_every in (1, 10):
            monitor = CollapseMonitor(config.model.num_classes, check_every=check_every)
            for _ in range(200):  # a long series, so the trailing-window check is at its full size
                monitor.update(logits, batch.query_target, 1.0)
            cost = per_step(lambda: monitor.update(logits, batch.query_target, 1.0), 200)
            print(f"{preset:8} {step_time:12.3f} {cost * 1e3:18.3f} {check_every:11d} {cost / step_time:9.3%}")
    logits, target = torch.randn(75, 10, 30, 30), torch.randint(0, 10, (75, 30, 30))
    monitor = CollapseMonitor(10)
    for _ in range(200):
        monitor.update(logits, target)
    print(
        "\nfull-size logits (75 x 10 x 30 x 30): monitor.update "
        f"{per_step(lambda: monitor.update(logits, target), 100) * 1e3:.2f} ms per step"
    )


if __name__ == "__main__":
    main()
