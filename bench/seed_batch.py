"""Seeds as a batch against separate runs (issue 15, item 3): training samples per second.

    python bench/seed_batch.py [--seeds 4] [--steps 3] [--threads 1] [--cases old-b8,new-b8,new-meta-b8]

For each case (tiny preset, accumulation 1) it trains K seeds two ways on the same thread count, each
with one warm-up step and then --steps timed steps:
- separate: K single-seed Trainers one after another (what K probes cost in one worker process);
- batch: one SeedBatchTrainer of the K seeds (one vmapped model).
The NEW config trains with gradient checkpointing, which a seed batch cannot apply, so NEW cases
also time the separate runs with checkpointing off ("separate, no ckpt"): the fair comparison of the
vectorisation alone. Prints samples per second and the batch/separate ratios. Asserts nothing.
On 2 cores, K separate probes also run as 2 one-thread processes (1.5-1.8x, docs/speed.md); the
batch can do the same with two batches, so the ratios below compare like with like per core.
"""

from __future__ import annotations

import argparse
import time

import torch

from collapse_doctor.config import default_config_path, load_config
from collapse_doctor.data.arc import load_tasks, usable_tasks
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.train.seed_batch import SeedBatchTrainer
from collapse_doctor.train.trainer import Trainer

CASES = {"old-b8": ("old", 8, False), "new-b8": ("new", 8, False), "new-meta-b8": ("new", 8, True)}


def config_for(case: str, extra: list[str] = ()):
    which, batch, meta = CASES[case]
    sets = [f"training.batch_size={batch}", "training.grad_accumulation_steps=1", *extra]
    if which == "new":
        sets.append(f"training.meta_learning_start_epoch={0 if meta else 1000}")
    config, _ = apply_preset(load_config(default_config_path(which), sets), PRESETS["tiny"])
    return config


def timed(step, steps: int) -> float:
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", default="old-b8,new-b8,new-meta-b8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    all_tasks = load_tasks()
    seeds = list(range(args.seeds))
    print(f"K = {args.seeds} seeds, {args.threads} thread(s), {args.steps} timed steps after 1 warm-up step")
    print("| case | separate (samples/s) | separate, no ckpt | batch | batch / separate | batch / no ckpt |")
    print("|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        config = config_for(case)
        tasks = usable_tasks(all_tasks, config.data, config.model.max_grid_size)
        samples = config.training.batch_size

        def separate(cfg) -> float:
            seconds = sum(
                timed(Trainer(cfg, tasks, seed=s, steps_per_epoch=10**6).train_step, args.steps) for s in seeds
            )
            return samples * len(seeds) / seconds

        plain = separate(config)
        no_ckpt = separate(config_for(case, ["training.gradient_checkpointing=false"])) if case != "old-b8" else plain
        batch = SeedBatchTrainer(config, tasks, seeds=seeds, steps_per_epoch=10**6)
        batched = samples * len(seeds) / timed(batch.train_step, args.steps)
        print(
            f"| {case} | {plain:.1f} | {no_ckpt:.1f} | {batched:.1f} | {batched / plain:.2f}x | "
            f"{batched / no_ckpt:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
