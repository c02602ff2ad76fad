"""Training throughput of this tree against a stored commit, in one run (issue 15's fixed regime).

    python bench/throughput.py [--baseline REV] [--threads 1,2] [--steps 6] [--cases old-b32,new-b32,new-meta-b8]

Cases (tiny preset: D 32, 10x10 canvas, accumulation 1):
- old-b32: the OLD fixture config (2a50f2d), batch 32;
- new-b32: the NEW config (main), batch 32, LOO and equivariance off;
- new-meta-b8: the NEW config, batch 8, LOO and equivariance on from step 0.
Each version runs in its own process (the baseline from `git archive REV`, nothing checked out), on
the same seed and thread count: two warm-up steps, then --steps timed steps; the versions alternate
--repeats times and each one's fastest run counts. Printed: training samples
per second, the new/baseline ratio, FLOPs per step (FlopCounterMode) over step time, and that rate as a
share of this machine's float32 matmul rate at the same thread count. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "f6c09c9"  # the last commit before the issue-15 speed work

CHILD = r"""
import json, sys, time
import torch
from torch.utils.flop_counter import FlopCounterMode
from collapse_doctor.config import default_config_path, load_config
from collapse_doctor.data.arc import load_tasks, usable_tasks
try:
    from collapse_doctor.experiments.presets import PRESETS, apply_preset
except ImportError:  # a baseline from before the package layout of issue 17
    from collapse_doctor.presets import PRESETS, apply_preset
from collapse_doctor.train.trainer import Trainer

case, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.set_flush_denormal(True)
which, batch, meta = {"old-b32": ("old", 32, False), "new-b32": ("new", 32, False), "new-meta-b8": ("new", 8, True)}[case]
sets = [f"training.batch_size={batch}", "training.grad_accumulation_steps=1"]
if which == "new":
    sets.append(f"training.meta_learning_start_epoch={0 if meta else 1000}")
config, _ = apply_preset(load_config(default_config_path(which), sets), PRESETS["tiny"])
tasks = usable_tasks(load_tasks(), config.data, config.model.max_grid_size)
trainer = Trainer(config, tasks, seed=0, steps_per_epoch=10**6)
trainer.train_step(); trainer.train_step()
start = time.perf_counter()
for _ in range(steps):
    trainer.train_step()
seconds = (time.perf_counter() - start) / steps
with FlopCounterMode(display=False) as counter:
    trainer.train_step()
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
a @ b
start = time.perf_counter()
for _ in range(5):
    a @ b
rate = 2 * 2048**3 / ((time.perf_counter() - start) / 5)
print(json.dumps({"seconds": seconds, "samples_per_s": batch / seconds, "flops": counter.get_total_flops(), "matmul": rate}))
"""


def extract(rev: str, dest: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev], check=True, capture_output=True
    ).stdout
    path = dest / rev
    path.mkdir()
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(path, filter="data")
    return path


def measure(tree: Path, case: str, threads: int, steps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, case, str(threads), str(steps)], capture_output=True, text=True, env=env, cwd=tree
    )
    if result.returncode:
        raise SystemExit(f"{tree} {case}: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def sweep_layouts(case: str, cores: int, steps: int) -> None:
    """A sweep on `cores` cores: one probe at a time with `cores` threads, against `cores` probes at once
    with one thread each (what the local executor's worker processes do)."""
    alone = measure(ROOT, case, cores, steps)["samples_per_s"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, case, "1", str(steps)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )
        for _ in range(cores)
    ]
    together = sum(json.loads(c.communicate()[0].strip().splitlines()[-1])["samples_per_s"] for c in children)
    print(f"| {case} | 1 process x {cores} threads | {alone:.1f} | 1.00x |")
    print(f"| {case} | {cores} processes x 1 thread, at once | {together:.1f} (sum) | {together / alone:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--cases", default="old-b32,new-b32,new-meta-b8")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each version; the fastest counts")
    parser.add_argument("--sweep-cores", type=int, default=0, help="instead: compare sweep layouts on this many cores")
    args = parser.parse_args()
    if args.sweep_cores:
        print("| case | layout | samples/s | vs one process |\n|---|---|---|---|")
        for case in args.cases.split(","):
            sweep_layouts(case, args.sweep_cores, args.steps)
        return
    print(
        f"| case | threads | baseline {args.baseline} samples/s | this tree samples/s | ratio | GFLOP/step | GFLOP/s "
        "| of matmul |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = extract(args.baseline, Path(tmp))
        for case in args.cases.split(","):
            for threads in (int(t) for t in args.threads.split(",")):
                runs: dict[str, list[dict]] = {"old": [], "new": []}
                for _ in range(args.repeats):  # alternating, the fastest of each: other load slows both alike
                    runs["old"].append(measure(baseline, case, threads, args.steps))
                    runs["new"].append(measure(ROOT, case, threads, args.steps))
                old, new = (max(r, key=lambda m: m["samples_per_s"]) for r in runs.values())
                gflops = new["flops"] / new["seconds"] / 1e9
                print(
                    f"| {case} | {threads} | {old['samples_per_s']:.1f} | {new['samples_per_s']:.1f} | "
                    f"{new['samples_per_s'] / old['samples_per_s']:.2f}x "
                    f"| {new['flops'] / 1e9:.1f} | {gflops:.1f} | {gflops * 1e9 / new['matmul']:.0%} of "
                    f"{new['matmul'] / 1e9:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
