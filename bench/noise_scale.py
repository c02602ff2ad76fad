"""Gradient noise scale B_simple of a config at the probe's width, at init and after training steps.

    python bench/noise_scale.py fixtures/seed_old_2a50f2d.yaml --at 0,100,200 --micro-batch 8 --micro-batches 32

Trains the tiny preset at batch 8 (the b8 regime) with one thread and measures B_simple from
--micro-batches gradients of --micro-batch samples each (McCandlish et al. 2018, appendix A), on the
samples right after the ones trained on. Prints one row per measurement and the probe's batch next to it.
"""

from __future__ import annotations

import argparse
import json
import time

from collapse_doctor.config import load_config
from collapse_doctor.config.schedule import steps_per_epoch
from collapse_doctor.data.arc import load_tasks, usable_tasks
from collapse_doctor.experiments.gradient_noise import micro_batch_gradients, noise_scale
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.experiments.regimes import by_name
from collapse_doctor.experiments.run_setup import configure_cpu
from collapse_doctor.train.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--at", default="0,100,200")
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--micro-batches", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regime", default="b8")
    args = parser.parse_args()
    loaded = load_config(args.config, [*by_name(args.regime).overrides, f"probe.seed={args.seed}"])
    config, _ = apply_preset(loaded, PRESETS["tiny"])
    configure_cpu(config.probe)
    tasks = usable_tasks(load_tasks("arc-agi-1", None), config.data, config.model.max_grid_size)
    trainer = Trainer(config, tasks, seed=args.seed, steps_per_epoch=steps_per_epoch(config))
    probe_batch = config.training.batch_size * config.training.grad_accumulation_steps
    print(
        f"{args.config}: D {config.model.hidden_dim}, regime {args.regime} (probe batch {probe_batch}), seed "
        f"{args.seed}, {args.micro_batches} x {args.micro_batch} samples per measurement"
    )
    for at in sorted(int(a) for a in args.at.split(",")):
        while trainer.step < at:
            trainer.train_step()
        started = time.perf_counter()
        # the sample stream is indexed by batch of config.training.batch_size; measure on the batches after the trained ones
        first = (trainer.step + 1) * config.training.grad_accumulation_steps
        if args.micro_batch != config.training.batch_size:
            raise SystemExit("--micro-batch must equal the regime's batch size (the stream is indexed by it)")
        result = noise_scale(micro_batch_gradients(trainer, first, args.micro_batches), args.micro_batch, trainer.step)
        b = "n/a (|G|^2 <= 0 at this sample size)" if result.b_simple is None else f"{result.b_simple:,.0f}"
        print(
            json.dumps(
                {**result.to_json(), "probe_batch": probe_batch, "seconds": round(time.perf_counter() - started, 1)}
            )
        )
        print(f"  step {at}: B_simple {b} against the probe's batch {probe_batch}")


if __name__ == "__main__":
    main()
