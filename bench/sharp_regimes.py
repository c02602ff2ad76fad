"""The sharp warm regimes (warm-b8-p10, -p20, -p40) on the fixture pair, from bench/results/regimes.jsonl:
per regime, OLD into OLD (the control) and OLD into NEW, per seed; whether the control stays learned
(calibrate.stays_learned); the separation on fg_auc; the false-alarm rate of the measure rule (control
against itself on disjoint seeds, measured and exact); the reference's >= 50 % drop test.

    python bench/regime_sweep.py fixtures/seed_old_2a50f2d.yaml --regimes warm-b8-p10,warm-b8-p20,warm-b8-p40 \
        --seeds 0-19 --base fixtures/seed_old_2a50f2d.yaml
    python bench/regime_sweep.py fixtures/seed_new_main.yaml --regimes warm-b8-p10,warm-b8-p20,warm-b8-p40 \
        --seeds 0-7 --base fixtures/seed_old_2a50f2d.yaml
    python bench/sharp_regimes.py [--results bench/results/regimes.jsonl]

bench/results/regimes.jsonl holds the runs before the dropout change (cache format 3);
bench/results/regimes_v4.jsonl the warm-b8-p10 runs after it (format 4; the same two commands with
--regimes warm-b8-p10 --out bench/results/regimes_v4.jsonl).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from false_alarm import exact_false_alarm  # noqa: E402

from collapse_doctor.experiments.regimes import SHARP  # noqa: E402
from collapse_doctor.judge.measures import PRIMARY, MeasureRule, compare  # noqa: E402
from collapse_doctor.judge.verdict import is_good  # noqa: E402

OLD, NEW = "fixtures/seed_old_2a50f2d.yaml", "fixtures/seed_new_main.yaml"


def load(path: str = "bench/results/regimes.jsonl") -> dict:
    runs: dict = {}
    for line in open(path, encoding="utf-8"):
        d = json.loads(line)
        if d.get("set") or d.get("base") != OLD or d["measures"].get(PRIMARY) is None:
            continue
        runs[(d["config"], d["regime"], d["seed"])] = d  # the last line of a (config, regime, seed) wins
    return runs


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--results", default="bench/results/regimes.jsonl")
    runs, rule = load(parser.parse_args().results), MeasureRule()
    exact = {k: exact_false_alarm(rule, k) for k in (4, 5)}
    print(
        "| regime | OLD seeds | OLD verdicts | stays learned | OLD fg_auc | NEW seeds | NEW verdicts | NEW fg_auc |"
        " p (4 v 4, seeds 0-3) | delta | drop test OLD / NEW | false alarms 4 v 4 (exact) | 5 v 5 (exact) |"
        " s per NEW probe |"
    )
    print("|---" * 14 + "|")
    for regime in SHARP:
        old = [runs[k] for k in sorted(runs) if k[0] == OLD and k[1] == regime.name]
        new = [runs[k] for k in sorted(runs) if k[0] == NEW and k[1] == regime.name]
        if not old:
            continue

        def counts(side):
            out: dict = {}
            for d in side:
                out[d["label"]] = out.get(d["label"], 0) + 1
            return " ".join(f"{k} {v}" for k, v in sorted(out.items()))

        stays = sum(1 for d in old if d["warm_start"]["phase1_learned"] and is_good(d["label"]) is not False)
        auc = {id(d): d["measures"][PRIMARY] for d in old + new}
        first = [auc[id(d)] for d in old if d["seed"] < 4], [auc[id(d)] for d in new if d["seed"] < 4]
        c = compare(first[1], first[0]) if first[1] else None
        fired = [sum(1 for d in side if d["warm_start"].get("reference_drop_test") is True) for side in (old, new)]
        rng, alarms = random.Random(0), {}
        values = [auc[id(d)] for d in old]
        for k in (4, 5):
            if len(values) >= 2 * k:
                bad = 0
                for _ in range(200):
                    drawn = rng.sample(values, 2 * k)
                    bad += rule.decide(drawn[:k], drawn[k:]) == "bad"
                alarms[k] = f"{bad / 200:.1%} ({exact[k]:.2%})"
        secs = [d["seconds"] for d in new]  # as measured when it ran (a cached line keeps its seconds)
        row = [
            regime.name,
            str(len(old)),
            counts(old),
            f"{stays} of {len(old)}",
            f"{min(values):.3f}-{max(values):.3f} (median {sorted(values)[len(values) // 2]:.3f})",
            str(len(new)),
            counts(new) or "-",
            f"{min(auc[id(d)] for d in new):.3f}-{max(auc[id(d)] for d in new):.3f}" if new else "-",
            f"{c.p:.4f}" if c else "-",
            f"{c.cliffs_delta:.2f}" if c else "-",
            f"{fired[0]} of {len(old)} / {fired[1]} of {len(new)}",
            alarms.get(4, "-"),
            alarms.get(5, "-"),
            f"{min(secs):.0f}-{max(secs):.0f}" if secs else "-",
        ]
        print("| " + " | ".join(row) + " |")
    print(
        "stays learned: phase 1 reached the learned level and phase 2 did not collapse (calibrate.stays_learned); "
        "p: one-sided exact Mann-Whitney of NEW's fg_auc against OLD's; false alarms: 200 random disjoint draws "
        "of the OLD seeds, MeasureRule 'bad', with the exact rate from the permutation distribution"
    )


if __name__ == "__main__":
    main()
