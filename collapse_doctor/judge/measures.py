"""Continuous outcome measures of a probe, beside its verdict class.

A verdict is one of six labels; two configurations can both be TRANSIENT and still differ in how long
and how deep their collapse was. These measures grade outcomes only (what the run predicted), never
internal signals: precursors such as GRU gate saturation or HyperLoRA norms differ between
architectures whether or not a run collapses, so they are reported (`precursors`) and never compared.

- `fg_auc` (the primary measure): mean FG accuracy over a fixed window of steps, i.e. the area under
  the FG-accuracy curve divided by the window's length. A collapse lowers it by its depth times its
  length; a slow recovery lowers it too. Higher is better.
- `final_bg_excess`: predicted minus target background share over the verdict's final window.
  Lower is better.
- `steps_to_learned`: the first step at which the trailing `final_window` means of FG and BG accuracy
  both reach `learned_acc`; budget + 1 when the run never learned. Lower is better.

They are compared across seeds only over the same window with early stopping off (a stopped run has
no values for the steps it skipped); `compare` says so when that does not hold.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import asdict, dataclass

from collapse_doctor.config import VerdictConfig
from collapse_doctor.judge.stats import cliffs_delta, mann_whitney

PRIMARY = "fg_auc"
HIGHER_IS_BETTER = {"fg_auc": True, "final_bg_excess": False, "steps_to_learned": False}


def _value(row: dict, name: str) -> float | None:
    value = row.get(name)
    if value is None or isinstance(value, (bool, str)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Measures:
    fg_auc: float | None
    final_bg_excess: float | None
    steps_to_learned: int
    window: tuple[int, int]  # [first, last] step of the window the measures cover
    steps_present: int  # metric rows inside the window (less than its length: the run stopped early)

    def to_json(self) -> dict:
        return asdict(self)


def measure(
    series: list[dict], cfg: VerdictConfig | None = None, *, first_step: int = 0, budget: int | None = None
) -> Measures:
    """The measures of one run over steps first_step .. first_step + budget - 1 (default: every row)."""
    cfg = cfg or VerdictConfig()
    rows = sorted((r for r in series if not r.get("event") and "step" in r), key=lambda r: r["step"])
    rows = [r for r in rows if r["step"] >= first_step]
    if budget is None:
        budget = (rows[-1]["step"] - first_step + 1) if rows else 0
    rows = [r for r in rows if r["step"] < first_step + budget]
    fg = [v for r in rows if (v := _value(r, "fg_acc")) is not None]
    auc = sum(fg) / len(fg) if fg else None
    tail = rows[-cfg.final_window :]
    excess = [
        p - t
        for r in tail
        if (p := _value(r, "pred_bg_share")) is not None and (t := _value(r, "target_bg_share")) is not None
    ]
    learned = budget + 1
    for i in range(len(rows)):
        window = rows[max(0, i - cfg.final_window + 1) : i + 1]
        if len(window) < cfg.final_window:
            continue
        f = [v for r in window if (v := _value(r, "fg_acc")) is not None]
        b = [v for r in window if (v := _value(r, "bg_acc")) is not None]
        if f and b and sum(f) / len(f) >= cfg.learned_acc and sum(b) / len(b) >= cfg.learned_acc:
            learned = rows[i]["step"] - first_step
            break
    return Measures(
        auc, sum(excess) / len(excess) if excess else None, learned, (first_step, first_step + budget - 1), len(rows)
    )


def precursors(series: list[dict]) -> dict[str, float | None]:
    """Internal signals averaged over the run, for the report only (never used to classify)."""
    rows = [r for r in series if not r.get("event") and "step" in r]

    def mean(values: list[float]) -> float | None:
        values = [v for v in values if v is not None and math.isfinite(v)]
        return sum(values) / len(values) if values else None

    def nested(row: dict, name: str, inner: str | None = None) -> float | None:
        value = row.get(name)
        if isinstance(value, dict):
            if inner is not None:
                v = value.get(inner)
                return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
            parts = [float(v) for v in value.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
            return sum(parts) / len(parts) if parts else None
        return _value(row, name)

    return {
        "gate_saturation_update": mean([nested(r, "gate_saturation", "update") for r in rows]),
        "gate_saturation_reset": mean([nested(r, "gate_saturation", "reset") for r in rows]),
        "lora_delta_norm": mean([nested(r, "lora_delta_norm") for r in rows]),
        "grad_norm_total": mean([_value(r, "grad_norm_total") for r in rows]),
        "clipped_share": mean([1.0 if r.get("clipped") else 0.0 for r in rows if "clipped" in r]),
    }


@dataclass(frozen=True)
class Comparison:
    """One measure of a candidate against a reference, per seed."""

    measure: str
    candidate: list[float]
    reference: list[float]
    p: float  # exact Mann-Whitney, one-sided: the candidate is worse
    p_two_sided: float
    cliffs_delta: float  # oriented so that positive = the candidate is worse
    worse: bool | None  # the decision rule: True worse, False not worse, None undecided

    def to_json(self) -> dict:
        return asdict(self)


def compare(
    candidate: list[float | None],
    reference: list[float | None],
    measure_name: str = PRIMARY,
    *,
    alpha: float = 0.05,
    min_delta: float = 0.474,
    max_good_delta: float = 0.33,
) -> Comparison:
    """Is the candidate worse than the reference on this measure? MeasureRule's decision, with its
    defaults: worse when the one-sided exact rank test gives p < alpha and Cliff's delta >= min_delta;
    not worse when delta < max_good_delta; otherwise undecided (None). So `worse` in every report says
    what the rule decided."""
    c = [float(v) for v in candidate if v is not None]
    r = [float(v) for v in reference if v is not None]
    if not c or not r:
        return Comparison(measure_name, c, r, 1.0, 1.0, 0.0, None)
    higher_better = HIGHER_IS_BETTER[measure_name]
    _, p = mann_whitney(c, r, "less" if higher_better else "greater")
    _, p2 = mann_whitney(c, r, "two-sided")
    delta = cliffs_delta(r, c) if higher_better else cliffs_delta(c, r)
    if p < alpha and delta >= min_delta:
        worse: bool | None = True
    elif delta < max_good_delta:
        worse = False
    else:
        worse = None
    return Comparison(measure_name, c, r, p, p2, delta, worse)


@dataclass(frozen=True)
class MeasureRule:
    """Classify a candidate against a good reference by the primary measure, per seed.

    bad: the one-sided exact rank test says the candidate is worse (p < alpha) AND Cliff's delta is at
    least `min_delta` (0.474, a large effect; Romano et al. 2006); good: delta below `max_good_delta`
    (0.33, at most a small effect); otherwise undecided (more seeds, or a skip at the cap). One-sided:
    a candidate that is better than the reference is good.
    """

    alpha: float = 0.05
    min_delta: float = 0.474
    max_good_delta: float = 0.33
    measure: str = PRIMARY

    def compare(self, candidate: list[float | None], reference: list[float | None]) -> Comparison:
        return compare(
            candidate,
            reference,
            self.measure,
            alpha=self.alpha,
            min_delta=self.min_delta,
            max_good_delta=self.max_good_delta,
        )

    def decide(self, candidate: list[float | None], reference: list[float | None]) -> str | None:
        return self.decision(self.compare(candidate, reference))

    @staticmethod
    def decision(c: Comparison) -> str | None:
        """bad / good / None (undecided) from a comparison this rule made."""
        if not c.candidate or not c.reference or c.worse is None:
            return None
        return "bad" if c.worse else "good"

    def settled(self, candidate: list[float | None], reference: list[float | None], planned: int) -> str | None:
        """The decision `planned` candidate seeds would reach, when the seeds still to come cannot change it,
        else None (run more). Exact: the decision depends on the values only through the rank sum, and is
        monotone in it (bad at the low end, good at the high end), so it is fixed when the two extreme
        completions (every seed to come below every reference value, or above) agree. Needs distinct
        values: a tie changes the exact null distribution, so with one the answer is None until all ran."""
        r = [float(v) for v in reference if v is not None]
        return settled(lambda values: self.decide(values, r), candidate, planned, r)

    def missed(self, candidate_seeds: int, reference_seeds: int, shift_sd: float = 1.0) -> float:
        """How often a candidate that is truly worse by `shift_sd` standard deviations (fg_auc per seed
        normal, equal spread) is called 'good' at these seed counts: what a 'good' could have missed."""
        return missed_regression(candidate_seeds, reference_seeds, shift_sd, self.max_good_delta)

    def missed_text(self, candidate_seeds: int, reference_seeds: int) -> str:
        one, two = (self.missed(candidate_seeds, reference_seeds, d) for d in (1.0, 2.0))
        return (
            f"'good' at {candidate_seeds} v {reference_seeds} seeds can miss a regression: a true shift of 1 SD is "
            f"called good {one:.0%} of the time, 2 SD {two:.0%} (normal fg_auc per seed; more seeds narrow it)"
        )

    def text(self) -> str:
        return (
            f"{self.measure} against the good endpoint's seeds: bad when the one-sided exact Mann-Whitney p < "
            f"{self.alpha:g} and Cliff's delta >= {self.min_delta:g}; "
            f"good when delta < {self.max_good_delta:g}; otherwise undecided (more seeds, a skip at the cap)"
        )


@functools.lru_cache(maxsize=256)
def missed_regression(
    candidate_seeds: int, reference_seeds: int, shift_sd: float, max_good_delta: float = 0.33, draws: int = 4000
) -> float:
    """P('good') for a candidate truly worse by shift_sd SD: 'good' depends only on Cliff's delta (below
    max_good_delta), so this draws normal samples (fixed RNG seed: the same answer every time) and counts.
    At 4 v 4, a 1-SD regression is called good about 28 % of the time (bench/calibrate_error_rates.py)."""
    rng = random.Random(0)
    hits = 0
    for _ in range(draws):
        reference = [rng.gauss(0.0, 1.0) for _ in range(reference_seeds)]
        candidate = [rng.gauss(-shift_sd, 1.0) for _ in range(candidate_seeds)]
        if cliffs_delta(reference, candidate) < max_good_delta:
            hits += 1
    return hits / draws


def settled(decide, candidate: list[float | None], planned: int, others: list[float]) -> str | None:
    """What `decide` answers once `planned` candidate seeds have run, if the seeds still to come cannot
    change it; else None. `decide` must be monotone in each candidate value (every rank rule here is: lower
    values move it towards 'bad', higher towards 'good'), so the answer is fixed when the two extreme
    completions agree: every seed to come below every value seen (candidate and `others`, the reference
    values), or above. A tie among the values seen changes the exact null distribution, so then None."""
    c = [float(v) for v in candidate if v is not None]
    left = planned - len(c)
    if left <= 0:
        return decide(c)
    seen = c + [float(v) for v in others]
    if not c or not others or len(set(seen)) < len(seen):
        return None
    low, high = min(seen) - 1.0, max(seen) + 1.0
    worst = decide(c + [low - i for i in range(left)])
    best = decide(c + [high + i for i in range(left)])
    return worst if worst == best else None


COLLAPSED_CLASS, DEGRADED_CLASS, GOOD_CLASS = "collapsed", "degraded", "good"


@dataclass(frozen=True)
class CollapseScale:
    """A commit placed on the scale its history's endpoints define, by the primary measure per seed.

    The good endpoint's seeds are one end, the bad endpoint's the other. Both questions use MeasureRule:
    - `worse(c)`: is the candidate worse than the good endpoint? 'bad' / 'good' / None (undecided);
    - `collapsed(c)`: does it sit with the bad endpoint? 'bad' (collapsed) when it is worse than the good
      endpoint AND the bad endpoint is not worse than it (Cliff's delta of bad against candidate below
      max_good_delta); 'good' (not collapsed) when it is not worse than the good endpoint, or the bad
      endpoint is worse than it (p < alpha, delta >= min_delta: it sits above the collapse); else None.
    A commit is degraded when it is worse than the good endpoint but not collapsed. Each call is the same
    exact rank test, so under exchangeability each error is the rule's exact false-alarm rate (2.86 % at
    4 v 4 seeds, docs/validity.md section 10)."""

    good: tuple[float, ...]
    bad: tuple[float, ...]
    rule: MeasureRule = MeasureRule()

    def worse(self, candidate: list[float | None]) -> str | None:
        return self.rule.decide(candidate, list(self.good))

    def collapsed(self, candidate: list[float | None]) -> str | None:
        worse = self.worse(candidate)
        if worse == "good":
            return "good"
        above_collapse = self.rule.decide(list(self.bad), candidate)  # 'bad': the bad endpoint is worse than it
        if above_collapse == "bad":
            return "good"
        if worse == "bad" and above_collapse == "good":
            return "bad"
        return None

    def classify(self, candidate: list[float | None]) -> str | None:
        """collapsed / degraded / good, or None while either question is undecided."""
        collapsed, worse = self.collapsed(candidate), self.worse(candidate)
        if collapsed == "bad":
            return COLLAPSED_CLASS
        if collapsed == "good" and worse == "bad":
            return DEGRADED_CLASS
        if collapsed == "good" and worse == "good":
            return GOOD_CLASS
        return None

    def text(self) -> str:
        r = self.rule
        return (
            f"{r.measure} per seed on the scale of the endpoints: worse than the good endpoint when the one-sided "
            f"exact Mann-Whitney p < {r.alpha:g} and Cliff's delta >= {r.min_delta:g}; collapsed when worse and the "
            f"bad endpoint is not worse than it (delta < {r.max_good_delta:g}); degraded when worse but the bad "
            "endpoint is worse still (p and delta as above)"
        )
