"""The known costs of a CPU training step, each measured before and after the change that would remove
it, with whether the change keeps the numbers (issue 15, item 4).

    python bench/known_costs.py [--case new-b32] [--steps 4] [--threads 1] [--only dropout,channels_last,compile]

- dropout: the step with the config's dropout against dropout 0 (what the dropout draws cost; not a
  change to keep: dropout is part of the model);
- channels_last: the model and its inputs in channels-last memory format;
- compile: torch.compile of the model (inductor, `fallback_random` so dropout draws eager's mask):
  compile seconds, steady-state seconds per step, and the break-even probe length.
"Same rows" compares the metrics rows of the timed steps with the eager/contiguous run's, exactly.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from collapse_doctor.config import default_config_path, load_config
from collapse_doctor.data.arc import load_tasks, usable_tasks
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.train.trainer import Trainer

CASES = {"old-b32": ("old", 32, False), "new-b32": ("new", 32, False), "new-meta-b8": ("new", 8, True)}


def trainer_for(case: str, tasks, extra: list[str] = ()) -> Trainer:
    which, batch, meta = CASES[case]
    sets = [f"training.batch_size={batch}", "training.grad_accumulation_steps=1", *extra]
    if which == "new":
        sets.append(f"training.meta_learning_start_epoch={0 if meta else 1000}")
    config, _ = apply_preset(load_config(default_config_path(which), sets), PRESETS["tiny"])
    return Trainer(config, usable_tasks(tasks, config.data, config.model.max_grid_size), seed=0, steps_per_epoch=10**6)


def timed_rows(trainer: Trainer, steps: int, warmup: int = 2) -> tuple[float, float, list[str]]:
    """(seconds of the warm-up steps, seconds per timed step, the timed steps' rows as JSON)."""
    start = time.perf_counter()
    for _ in range(warmup):
        trainer.train_step()
    first = time.perf_counter() - start
    rows = []
    start = time.perf_counter()
    for _ in range(steps):
        rows += [json.dumps(r, sort_keys=True) for r in trainer.train_step()]
    return first, (time.perf_counter() - start) / steps, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="new-b32", choices=sorted(CASES))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="dropout,channels_last,compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    tasks = load_tasks()
    _, base, base_rows = timed_rows(trainer_for(args.case, tasks), args.steps)
    print(f"{args.case}, {args.threads} thread(s): eager, contiguous {base:.3f} s/step")
    print("| change | s/step before | s/step after | speed-up | same rows | note |\n|---|---|---|---|---|---|")
    only = args.only.split(",")
    if "dropout" in only:
        _, seconds, _ = timed_rows(trainer_for(args.case, tasks, ["model.dropout=0.0"]), args.steps)
        print(
            f"| dropout 0 (cost of the draws, not a change to keep) | {base:.3f} | {seconds:.3f} | "
            f"{base / seconds:.2f}x | no | dropout is part of the model |"
        )
    if "channels_last" in only:
        trainer = trainer_for(args.case, tasks)
        trainer.model.to(memory_format=torch.channels_last)
        _, seconds, rows = timed_rows(trainer, args.steps)
        print(
            f"| channels-last model | {base:.3f} | {seconds:.3f} | {base / seconds:.2f}x | {rows == base_rows} | "
            "convolutions run on NHWC copies |"
        )
    if "compile" in only:
        import torch._inductor.config as inductor

        inductor.fallback_random = True  # dropout draws eager's masks, so rows can be compared
        trainer = trainer_for(args.case, tasks)
        trainer.model.forward = torch.compile(
            trainer.model.forward
        )  # parameter names (and so the rows) stay those of the module
        first, seconds, rows = timed_rows(trainer, args.steps, warmup=3)
        gain = base - seconds
        even = f"{first / gain:.0f} steps" if gain > 0 else "never"
        print(
            f"| torch.compile (inductor) | {base:.3f} | {seconds:.3f} | {base / seconds:.2f}x | {rows == base_rows} | "
            f"compile + 3 warm-up steps {first:.0f} s; pays back after {even} |"
        )


if __name__ == "__main__":
    main()
