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
