"""What one full-preset probe costs on a GPU, estimated where no GPU is lent: FLOPs of one optimizer
step of the NEW config at its own size (D 256, 30x30 canvas), counted by torch's FlopCounterMode on
CPU with batch 2 and scaled to the config's batch (75 x 4 accumulation), before and after the
meta-learning losses start; then seconds per probe (600 steps, last activation at 40 %) at an
achieved GPU rate given on the command line.

    python bench/full_preset_estimate.py [--achieved-tflops 100 200 400] [--probes 60] [--gpus 1 8 32]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from collapse_doctor.config import load_config
from collapse_doctor.data.arc import load_tasks, usable_tasks
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.train.trainer import Trainer


def step_flops(meta: bool, batch: int) -> tuple[float, object]:
    loaded = load_config(
        None,
        [
            f"training.batch_size={batch}",
            "training.grad_accumulation_steps=1",
            *(["training.meta_learning_start_epoch=0"] if meta else []),
        ],
    )
    config, _ = apply_preset(loaded, PRESETS["full"])
    tasks = usable_tasks(load_tasks(), config.data, config.model.max_grid_size)
    trainer = Trainer(config, tasks, seed=0, steps_per_epoch=10**6)
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    return counter.get_total_flops(), loaded.config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--achieved-tflops", type=float, nargs="+", default=[100.0, 200.0, 400.0])
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--batch", type=int, default=2, help="samples counted on CPU (scaled up to the config's batch)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    early, _ = step_flops(False, args.batch)
    meta, _ = step_flops(True, args.batch)
    own = load_config(None).config.training  # the config's own batch, not the one counted here
    samples = own.batch_size * own.grad_accumulation_steps
    per_sample = {"early": early / args.batch, "meta": meta / args.batch}
    steps = PRESETS["full"].steps
    early_steps = int(0.4 * steps)
    probe_flops = samples * (early_steps * per_sample["early"] + (steps - early_steps) * per_sample["meta"])
    print(
        f"NEW config at its own size: {per_sample['early'] / 1e9:.0f} GFLOP per sample before the meta losses, "
        f"{per_sample['meta'] / 1e9:.0f} after ({per_sample['meta'] / per_sample['early']:.1f}x)"
    )
    print(
        f"one optimizer step = {samples} samples: {samples * per_sample['early'] / 1e12:.1f} / "
        f"{samples * per_sample['meta'] / 1e12:.1f} TFLOP; a {steps}-step probe (activation at step {early_steps}, no "
        f"early stop): {probe_flops / 1e15:.2f} PFLOP"
    )
    print(
        f"\n{'achieved TFLOP/s':>17} {'min per probe':>14} "
        + " ".join(f"{f'{args.probes} probes, {g} GPU':>20}" for g in args.gpus)
    )
    for rate in args.achieved_tflops:
        seconds = probe_flops / (rate * 1e12)
        print(
            f"{rate:>17.0f} {seconds / 60:>14.1f} "
            + " ".join(f"{f'{args.probes * seconds / g / 3600:.1f} h':>20}" for g in args.gpus)
        )


if __name__ == "__main__":
    main()
