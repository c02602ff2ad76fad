"""Markdown tables for docs/validity.md from bench/results/regimes.jsonl (bench/regime_sweep.py's output).

    python bench/validity_tables.py

One row per (config, regime, seed), the last result kept when a probe was recorded twice; then a
summary per (config, regime): verdict counts and the median of each measure.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def fmt(value, digits=3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def main(path: str = "bench/results/regimes.jsonl") -> None:
    rows: dict[tuple, dict] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        if d.get("set"):
            continue
        rows[(Path(d["config"]).stem, d["regime"], d["seed"])] = d
    print(
        "| config | regime | seed | verdict | onset | fg_auc | final BG excess | steps to learned | gate sat. "
        "(update) | LoRA ‖ΔW‖ | grad norm | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (config, regime, seed), d in sorted(rows.items()):
        m, p = d["measures"], d["precursors"]
        print(
            f"| {config} | {regime} | {seed} | {d['label']} | {fmt(d['onset_step'])} | {fmt(m.get('fg_auc'))} | "
            f"{fmt(m.get('final_bg_excess'))} | {fmt(m.get('steps_to_learned'))} | "
            f"{fmt(p.get('gate_saturation_update'), 2)} | {fmt(p.get('lora_delta_norm'), 1)} | "
            f"{fmt(p.get('grad_norm_total'), 2)} | {d['seconds']:.0f} |"
        )
    print()
    print("| config | regime | seeds | verdicts | median fg_auc | median final BG excess | median steps to learned |")
    print("|---|---|---|---|---|---|---|")
    groups: dict[tuple, list[dict]] = {}
    for (config, regime, _), d in sorted(rows.items()):
        groups.setdefault((config, regime), []).append(d)
    for (config, regime), ds in groups.items():
        counts: dict[str, int] = {}
        for d in ds:
            counts[d["label"]] = counts.get(d["label"], 0) + 1

        def med(name):
            values = [d["measures"].get(name) for d in ds if d["measures"].get(name) is not None]
            return statistics.median(values) if values else None

        print(
            f"| {config} | {regime} | {len(ds)} | {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))} | "
            f"{fmt(med('fg_auc'))} | {fmt(med('final_bg_excess'))} | {fmt(med('steps_to_learned'))} |"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
