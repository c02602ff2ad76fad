"""Probe speed: optimizer steps per second per preset, achieved FLOP rate against this machine's matmul
rate, the instrumentation overhead (probe step / bare training step), and the effect of
torch.set_flush_denormal on a saturated model.

    python bench/probe_speed.py [--presets tiny small] [--steps N] [--threads T] [--device cpu|cuda]

Prints tables; asserts nothing. Phases: "early" is before the LOO/equivariance losses start (the main
forward/backward only), "meta" after (LOO adds one batched forward/backward over every holdout pair).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from collapse_doctor.config import default_config_path, load_config
from collapse_doctor.data.arc import load_tasks, usable_tasks
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.experiments.probe import run_probe
from collapse_doctor.train.losses import rlan_loss
from collapse_doctor.train.meta import equivariance_loss, loo_loss
from collapse_doctor.train.trainer import Trainer


def bare_step(trainer: Trainer) -> None:
    """The same training computation as Trainer.train_step without any metric, norm or event bookkeeping."""
    t = trainer.config.training
    stage = trainer.stage()
    trainer.optimizer.zero_grad(set_to_none=True)
    for micro in range(t.grad_accumulation_steps):
        batch = trainer.stream.batch(trainer.step * t.grad_accumulation_steps + micro, t.batch_size).to(trainer.device)
        out = trainer.model(batch.query_input, batch.support_inputs, batch.support_outputs, batch.pair_mask, stage)
        loss = rlan_loss(out, batch.query_target, t, hpm_balance_weight=trainer.config.model.hpm_balance_weight)
        (loss.total / t.grad_accumulation_steps).backward()
        if stage.loo:
            loo_loss(
                trainer.model,
                (batch.support_inputs, batch.support_outputs, batch.pair_mask),
                stage,
                weight=t.loo_training.loss_weight,
                accumulation=t.grad_accumulation_steps,
                min_pairs=t.loo_training.min_pairs_for_loo,
            )
        if stage.equivariance:
            equivariance_loss(
                trainer.model,
                out,
                stage,
                weight=t.equivariance_training.loss_weight,
                num_augmentations=t.equivariance_training.num_augmentations,
                accumulation=t.grad_accumulation_steps,
            )
    torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), t.gradient_clip)
    trainer.optimizer.step()
    trainer.step += 1


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, n: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - start) / n


def matmul_rate(device: torch.device, size: int = 2048) -> float:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    seconds = timed(lambda: a @ b, 5, device)
    return 2 * size**3 / seconds


def phase_trainer(preset: str, meta: bool, device: torch.device, tasks) -> Trainer:
    loaded = load_config(None, ["training.meta_learning_start_epoch=0"] if meta else [])
    config, _ = apply_preset(loaded, PRESETS[preset])
    kept = usable_tasks(tasks, config.data, config.model.max_grid_size)
    return Trainer(config, kept, seed=0, steps_per_epoch=10**6, device=device)


def speed_table(presets: list[str], steps: int, device: torch.device) -> None:
    tasks = load_tasks()
    torch.set_flush_denormal(True)  # as a probe does
    rate = matmul_rate(device)
    print(f"\nmatmul rate ({device}, float32 2048^2): {rate / 1e9:.1f} GFLOP/s; threads {torch.get_num_threads()}")
    print(
        f"{'preset':6} {'phase':6} {'probe s/step':>12} {'steps/s':>8} {'bare s/step':>11} {'overhead':>9} "
        f"{'GFLOP/step':>10} {'GFLOP/s':>8} {'of matmul':>9}"
    )
    for preset in presets:
        for meta in (False, True):
            probe = phase_trainer(preset, meta, device, tasks)
            probe.train_step()  # warm-up
            probe_time = timed(probe.train_step, steps, device)
            bare = phase_trainer(preset, meta, device, tasks)
            bare_step(bare)
            bare_time = timed(lambda: bare_step(bare), steps, device)
            with FlopCounterMode(display=False) as counter:
                bare_step(bare)
            flops = counter.get_total_flops()
            print(
                f"{preset:6} {'meta' if meta else 'early':6} {probe_time:12.3f} {1 / probe_time:8.2f} "
                f"{bare_time:11.3f} {probe_time / bare_time:9.3f} {flops / 1e9:10.2f} {flops / bare_time / 1e9:8.1f} "
                f"{flops / bare_time / rate:9.1%}"
            )


DENORMAL_CASES = {
    "old": (default_config_path("old"), ["training.learning_rate=5e-3"], "OLD config, tiny, lr 5e-3"),
    "new": (
        default_config_path("new"),
        ["training.meta_learning_start_epoch=1000", "model.hpm_start_epoch=1000"],
        "NEW config, tiny, gates ~95 % saturated, meta losses and HPM off",
    ),
}


def denormal_table(steps: int, case: str) -> None:
    """A model driven into saturation probed with and without flush-to-zero."""
    path, extra, text = DENORMAL_CASES[case]
    print(f"\nflush_denormal on a saturating probe ({text}):")
    print(f"{'flush':6} {'seconds':>8} {'s/step last half':>16} {'verdict':>10} {'same JSONL':>10}")
    outputs = {}
    for flush in (True, False):
        loaded = load_config(path, [*extra, f"probe.steps={steps}", f"probe.flush_denormal={str(flush).lower()}"])
        times: list[float] = []
        last = [time.perf_counter()]

        def on_row(_row, times=times, last=last):
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        with tempfile.TemporaryDirectory() as tmp:
            result = run_probe(loaded, out_dir=Path(tmp), on_row=on_row)
            rows = [json.dumps(r, sort_keys=True) for r in result.rows]
        half = times[len(times) // 2 :]
        outputs[flush] = rows
        same = "" if flush else str(outputs[True] == rows)
        print(
            f"{str(flush):6} {result.report.timing.seconds:8.1f} {sum(half) / len(half):16.3f} "
            f"{result.verdict.label:>10} {same:>10}"
        )
    torch.set_flush_denormal(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per phase")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--denormal-steps", type=int, default=60)
    parser.add_argument("--denormal-config", choices=sorted(DENORMAL_CASES), default="old")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if not args.skip_speed:
        speed_table(args.presets, args.steps, device)
    if device.type == "cpu" and args.denormal_steps:
        denormal_table(args.denormal_steps, args.denormal_config)


if __name__ == "__main__":
    main()
