"""scan on large logs: seconds and peak memory as the file grows (streamed: memory should stay near flat).

    python bench/scan_memory.py --sizes 25,50,100,200

Writes a probe-like JSONL of about N MB (rows as the probe writes them: nested loss terms, per-module
gradient norms, per-colour shares), scans it in a fresh process, and prints MB, rows, seconds, MB/s and
the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROW = {
    "fg_acc": 0.21,
    "bg_acc": 0.93,
    "pred_bg_share": 0.7,
    "target_bg_share": 0.58,
    "valid_cells": 412,
    "pred_share": [0.7] + [0.0333] * 9,
    "target_share": [0.58] + [0.0467] * 9,
    "fg_pred_share": [0.4] + [0.0667] * 9,
    "fg_pred_mode": 0,
    "fg_pred_mode_share": 0.4,
    "colours_predicted": 6,
    "colours_present": 7,
    "loss": 0.41,
    "loss_terms": {"task": 0.3, "min_clue": 0.01, "entropy": 0.05, "ponder": 0.05},
    "grad_norm": {
        k: 0.1
        for k in (
            "encoder",
            "feature_proj",
            "context_encoder",
            "dsc",
            "msre",
            "solver.gru",
            "solver.output_head",
            "hyper_lora",
        )
    },
    "grad_norm_total": 1.3,
    "clipped": True,
    "gate_saturation": {"reset": 0.1, "update": 0.2},
    "temperature": 1.0,
    "nonfinite_loss_batches": 0,
    "grads_finite": True,
    "params_finite": True,
    "skipped": False,
    "consecutive_nonfinite": 0,
}

CHILD = """
import resource, sys, time
from pathlib import Path
from collapse_doctor.judge.scan import scan_log
start = time.perf_counter()
result = scan_log(Path(sys.argv[1]))
print(result.verdict.steps, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="25,50,100,200")
    args = parser.parse_args()
    line_len = len(json.dumps({"step": 0, **ROW})) + 1
    print("| MB | rows | seconds | MB/s | peak RSS MB |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"log{size}.jsonl"
            n = size * 2**20 // line_len
            with path.open("w") as handle:
                for step in range(n):
                    handle.write(json.dumps({"step": step, **ROW}) + "\n")
            rows, seconds, rss = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
            ).stdout.split()
            mb = path.stat().st_size / 2**20
            print(f"| {mb:.0f} | {int(rows):,} | {float(seconds):.1f} | {mb / float(seconds):.1f} | {float(rss):.0f} |")
            path.unlink()


if __name__ == "__main__":
    main()
