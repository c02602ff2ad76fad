"""Exact tests for seed counts: is "3 of 3 collapsed against 0 of 3" evidence, or chance?

Fisher's exact test on the 2x2 table (bad, good) x (variant, reference), two-sided: the probability,
under the hypothesis that both sides share one collapse rate, of a table at most as likely as the one
observed. Pure Python (no scipy): the tables are tiny.
"""

from __future__ import annotations

from math import comb


def fisher_exact(bad_a: int, total_a: int, bad_b: int, total_b: int) -> float:
    """Two-sided p-value for bad_a of total_a against bad_b of total_b."""
    if not (0 <= bad_a <= total_a and 0 <= bad_b <= total_b):
        raise ValueError("counts must satisfy 0 <= bad <= total")
    bad = bad_a + bad_b
    total = total_a + total_b
    denominator = comb(total, bad)
    if denominator == 0:
        return 1.0

    def probability(k: int) -> float:
        return comb(total_a, k) * comb(total_b, bad - k) / denominator

    observed = probability(bad_a)
    low, high = max(0, bad - total_b), min(bad, total_a)
    p = sum(q for k in range(low, high + 1) if (q := probability(k)) <= observed * (1 + 1e-9))
    return min(1.0, p)


def smallest_p(seeds_a: int, seeds_b: int) -> float:
    """The most significant result K seeds per side can give (all bad against none)."""
    return fisher_exact(seeds_a, seeds_a, 0, seeds_b)


# --------------------------------------------------------------------------------------------------
# Continuous measures: an exact rank test, its effect size, and Holm's correction
# --------------------------------------------------------------------------------------------------
EXACT_LIMIT = 200_000  # splits enumerated exactly; 10 seeds a side is 184,756


def midranks(values: list[float]) -> list[float]:
    """Ranks 1..n with ties given the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mann_whitney(a: list[float], b: list[float], alternative: str = "two-sided") -> tuple[float, float]:
    """(U of `a`, p) by the exact permutation distribution of the mid-rank sum: every way to split the
    pooled values into groups of len(a) and len(b) is equally likely under the null. Ties use mid-ranks,
    so the test stays exact with them (the normal approximation does not). alternative 'greater': a
    tends to be larger than b; 'less': smaller. Beyond EXACT_LIMIT splits: 100,000 random splits
    (fixed seed), with the +1 correction."""
    if not a or not b:
        raise ValueError("both samples need at least one value")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative {alternative!r}: expected two-sided, greater or less")
    n, m = len(a), len(b)
    ranks = midranks(list(a) + list(b))
    offset = n * (n + 1) / 2
    observed = sum(ranks[:n]) - offset
    centre = n * m / 2
    eps = 1e-9

    def extreme(u: float) -> bool:
        if alternative == "greater":
            return u >= observed - eps
        if alternative == "less":
            return u <= observed + eps
        return abs(u - centre) >= abs(observed - centre) - eps

    from itertools import combinations
    from math import comb as _comb

    total = _comb(n + m, n)
    if total <= EXACT_LIMIT:
        hits = sum(1 for idx in combinations(range(n + m), n) if extreme(sum(ranks[i] for i in idx) - offset))
        return observed, hits / total
    import random

    rng = random.Random(0)
    draws, hits, pool = 100_000, 0, list(range(n + m))
    for _ in range(draws):
        idx = rng.sample(pool, n)
        hits += extreme(sum(ranks[i] for i in idx) - offset)
    return observed, (hits + 1) / (draws + 1)


def cliffs_delta(a: list[float], b: list[float]) -> float:
    """P(a > b) - P(a < b) over all pairs: -1..1, 0 when the two overlap evenly."""
    if not a or not b:
        raise ValueError("both samples need at least one value")
    greater = sum(1 for x in a for y in b if x > y)
    less = sum(1 for x in a for y in b if x < y)
    return (greater - less) / (len(a) * len(b))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error), in the input order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
