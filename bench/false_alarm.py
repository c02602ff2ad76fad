"""False-alarm rate of bisect's --by measure rule: one config against itself on disjoint seed sets.

    python bench/false_alarm.py --config fixtures/seed_old_2a50f2d.yaml --regime b8 --k 5 --repeats 200

Reads the per-seed fg_auc of that config and regime from bench/results/regimes.jsonl (written by
bench/regime_sweep.py), draws --repeats random pairs of disjoint k-seed sets (fixed RNG seed), and applies
MeasureRule.decide (candidate = one set, reference = the other). Every 'bad' is a false alarm, since
both sets ran the same config. The repeats share seeds, so they are not independent: with N seeds there
are C(N, k) * C(N - k, k) / 2 distinct pairs.
"""

from __future__ import annotations

import argparse
import json
import random
from math import comb

from collapse_doctor.judge.measures import PRIMARY, MeasureRule


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="fixtures/seed_old_2a50f2d.yaml")
    parser.add_argument("--regime", default="b8")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--results", default="bench/results/regimes.jsonl")
    args = parser.parse_args()
    values: dict[int, float] = {}
    for line in open(args.results, encoding="utf-8"):
        d = json.loads(line)
        if (
            d["config"] == args.config
            and d["regime"] == args.regime
            and not d.get("set")
            and d["measures"].get(PRIMARY) is not None
        ):
            values[d["seed"]] = d["measures"][PRIMARY]
    seeds = sorted(values)
    if len(seeds) < 2 * args.k:
        raise SystemExit(f"need {2 * args.k} seeds of {args.config} {args.regime}, have {len(seeds)}")
    rule, rng = MeasureRule(), random.Random(0)
    outcomes = {"bad": 0, "good": 0, None: 0}
    for _ in range(args.repeats):
        drawn = rng.sample(seeds, 2 * args.k)
        outcomes[rule.decide([values[s] for s in drawn[: args.k]], [values[s] for s in drawn[args.k :]])] += 1
    pairs = comb(len(seeds), args.k) * comb(len(seeds) - args.k, args.k) // 2
    print(f"{args.config} {args.regime}: {len(seeds)} seeds ({', '.join(f'{values[s]:.3f}' for s in seeds)})")
    print(
        f"{args.repeats} repeats of {args.k} vs {args.k} disjoint seeds ({pairs} distinct pairs), rule: {rule.text()}"
    )
    print(
        f"false alarms (bad): {outcomes['bad']} ({outcomes['bad'] / args.repeats:.1%}); good: {outcomes['good']} "
        f"({outcomes['good'] / args.repeats:.1%}); undecided: {outcomes[None]} ({outcomes[None] / args.repeats:.1%})"
    )
    exact = exact_false_alarm(rule, args.k)
    print(
        f"exact false-alarm rate of the rule at {args.k} vs {args.k} (permutation distribution, no ties): {exact:.2%}"
    )


def exact_false_alarm(rule: MeasureRule, k: int) -> float:
    """P(bad) when both sets of k seeds come from one distribution. Every arrangement of the 2k ranks is
    equally likely and, without ties, the rule's decision depends on the arrangement only through U (the
    pairs where the candidate is higher): count arrangements per U (exact null distribution, by
    recursion) and add those whose p < alpha and Cliff's delta >= min_delta."""
    from functools import lru_cache
    from math import comb

    @lru_cache(maxsize=None)
    def count(n: int, m: int, u: int) -> int:
        if u < 0:
            return 0
        if n == 0 or m == 0:
            return 1 if u == 0 else 0
        return count(n - 1, m, u - m) + count(n, m - 1, u)

    total, below, hits = comb(2 * k, k), 0, 0
    for u in range(k * k + 1):
        c = count(k, k, u)
        below += c
        if below / total < rule.alpha and 1 - 2 * u / (k * k) >= rule.min_delta:
            hits += c
    return hits / total


if __name__ == "__main__":
    main()
