"""calibrate's family-wise false-alarm rate over the grid it may walk, and the measure rule's power
(issue 24, item 6). Pure statistics: no training. Under the null the bad side's fg_auc per seed is drawn
from the same distribution as the good side's (iid normal; the exact rank test depends only on ranks, so
the distribution does not matter), independently per regime.

    python bench/calibrate_error_rates.py [--trials 20000]

Three walks over a grid of K regimes, every one usable (the worst case: each usable regime is one more
chance to separate by luck):
- "walk, Holm so far": measure the bad side in each usable regime, cheapest first, stop at the first whose
  Holm-adjusted p over the regimes measured so far is < alpha (with Cliff's delta >= 0.474): the rule
  before this change;
- "walk + confirmation": the same, then the chosen regime confirmed on fresh seeds (calibrate's default);
- "first usable only": the bad side is measured in the first usable regime only, and the walk stops there
  (the rule now, for calibrate and for the headline commands' self-calibration).

Then the rule's power: how often a true shift of d standard deviations (the bad side lower) is called
"bad", "good" (missed) or left undecided, at 4, 5 and 6 seeds a side.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from collapse_doctor.judge.measures import MeasureRule, compare
from collapse_doctor.judge.stats import holm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from false_alarm import exact_false_alarm  # noqa: E402

ALPHA, MIN_DELTA = 0.05, 0.474


def separates(bad: list[float], good: list[float]) -> tuple[float, float]:
    c = compare(bad, good, alpha=ALPHA, min_delta=MIN_DELTA)
    return c.p, c.cliffs_delta


def walk(rng: random.Random, k: int, seeds: int, rule: str) -> bool:
    """One calibration under the null: does it choose (and, with confirmation, confirm) a regime?"""
    measured: list[tuple[float, float]] = []
    for _ in range(k):
        good = [rng.gauss(0, 1) for _ in range(seeds)]
        bad = [rng.gauss(0, 1) for _ in range(seeds)]
        measured.append(separates(bad, good))
        adjusted = holm([p for p, _ in measured])
        if adjusted[-1] < ALPHA and measured[-1][1] >= MIN_DELTA:
            if rule == "walk + confirmation":
                fresh_good = [rng.gauss(0, 1) for _ in range(seeds)]
                fresh_bad = [rng.gauss(0, 1) for _ in range(seeds)]
                p, delta = separates(fresh_bad, fresh_good)
                return p < ALPHA and delta >= MIN_DELTA
            return True
        if rule == "first usable only":
            return False
    return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20000)
    args = parser.parse_args()
    rng = random.Random(0)
    print("the rule's exact false-alarm rate, one comparison (exact null distribution of U)")
    print("| seeds a side | " + " | ".join(str(k) for k in (4, 5, 6, 7, 8, 9, 10)) + " |")
    print("|---|" + "---|" * 7)
    print(
        "| false alarms | "
        + " | ".join(f"{100 * exact_false_alarm(MeasureRule(), k):.2f} %" for k in (4, 5, 6, 7, 8, 9, 10))
        + " |"
    )
    print()
    print(f"family-wise false-alarm rate under the null, {args.trials} simulated calibrations each")
    print("| regimes in the grid | seeds a side | walk, Holm so far | walk + confirmation | first usable only |")
    print("|---|---|---|---|---|")
    for k in (3, 8):
        for seeds in (4, 5):
            rates = []
            for rule in ("walk, Holm so far", "walk + confirmation", "first usable only"):
                hits = sum(walk(rng, k, seeds, rule) for _ in range(args.trials))
                rates.append(f"{100 * hits / args.trials:.2f} %")
            print(f"| {k} | {seeds} | " + " | ".join(rates) + " |")
    print()
    rule = MeasureRule()
    print(f"power of the measure rule (bad side shifted down by d SD), {args.trials // 4} trials each")
    print("| d (SD) | seeds a side | called bad | called good (missed) | undecided |")
    print("|---|---|---|---|---|")
    for d in (0.5, 1.0, 1.5, 2.0, 3.0):
        for seeds in (4, 5, 6):
            out = {"bad": 0, "good": 0, None: 0}
            for _ in range(args.trials // 4):
                good = [rng.gauss(0, 1) for _ in range(seeds)]
                bad = [rng.gauss(-d, 1) for _ in range(seeds)]
                out[rule.decide(bad, good)] += 1
            n = args.trials // 4
            print(
                f"| {d} | {seeds} | {100 * out['bad'] / n:.1f} % | {100 * out['good'] / n:.1f} % | "
                f"{100 * out[None] / n:.1f} % |"
            )


if __name__ == "__main__":
    main()
