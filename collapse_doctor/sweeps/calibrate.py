"""calibrate: find a probe regime in which a known-good config learns, then measure whether a
known-bad one separates from it there.

The order is the point. Regimes are kept or dropped on the good config alone (it must learn: HEALTHY
or TRANSIENT on at least `min_good` of its seeds, 4 of 5 by default), never by how well they
separate. Only then is the bad config measured, and in one regime only: the first usable one of the
grid's fixed order (cheapest first). The walk stops there, whether it separates or not, so the grid is
one test, not one per regime: its family-wise false-alarm rate is the rule's own (2.86 % at 4 v 4,
4.76 % at 5 v 5, exact), where walking on while the bad side does not separate, with Holm over the
regimes measured so far, chose a regime 10 % of the time under the null
(bench/calibrate_error_rates.py, docs/validity.md section 5). The chosen regime is then confirmed on
fresh seeds.

Separation is judged on the primary measure (`fg_auc`, collapse_doctor.judge.measures) with the exact
one-sided Mann-Whitney test and Cliff's delta: the bad config separates when p is below alpha and delta
is at least `min_delta` (0.474, the conventional 'large' effect, Romano et al. 2006). Fisher's exact
test on the verdict counts is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from collapse_doctor.errors import ConfigError
from collapse_doctor.experiments.regimes import REGIME_SECTIONS, Regime, is_warm, regime_yaml, warm_variant
from collapse_doctor.judge.measures import PRIMARY, compare
from collapse_doctor.judge.stats import fisher_exact
from collapse_doctor.judge.verdict import is_good
from collapse_doctor.sweeps.executors import Executor, sweep_executor
from collapse_doctor.sweeps.jobs import ProbeJob, ProbeSummary
from collapse_doctor.sweeps.runner import run_jobs
from collapse_doctor.sweeps.settings import CalibrationSettings


@dataclass(frozen=True)
class ConfigSource:
    """A config file, or a config text read from a git revision."""

    label: str  # how the tables name it
    path: str | None = None
    text: str | None = None
    overrides: tuple[str, ...] = ()  # after the user's: ablate's minimal base is its config with these

    def job(
        self,
        regime: Regime,
        seed: int,
        *,
        preset: str,
        data: str,
        device: str,
        user: tuple[str, ...],
        base: ConfigSource | None,
        seed_batch: tuple[int, ...] | None = None,
    ) -> ProbeJob:
        overrides = (*regime.overrides, *user, *self.overrides, f"probe.seed={seed}")
        base_text, base_overrides = None, None
        if base is not None and base.overrides and (base.path, base.text) == (self.path, self.text):
            # the base is this config with overrides (ablate's minimal base): the key ablate's own probes get
            base_overrides = (*regime.overrides, *user, *base.overrides, f"probe.seed={seed}")
        elif base is not None:
            base_text = base.text if base.text is not None else open(base.path, encoding="utf-8").read()  # noqa: SIM115
        return ProbeJob(
            self.path,
            overrides,
            preset,
            data,
            None,
            device,
            f"{self.label} {regime.name}",
            config_text=self.text,
            source=self.label,
            base_text=base_text,
            base_source=base.label if base else "",
            base_overrides=base_overrides,
            seed_batch=seed_batch,
        )


@dataclass
class RegimeResult:
    regime: Regime
    good: list[ProbeSummary]
    bad: list[ProbeSummary] = field(default_factory=list)
    usable: bool = False
    fisher_p: float | None = None
    p: float | None = None  # one-sided exact Mann-Whitney on the primary measure
    p_holm: float | None = None  # kept for the JSON: one test per calibration, so it equals p
    delta: float | None = None  # Cliff's delta, positive = bad is worse
    separates: bool | None = None

    def seconds_per_probe(self, side: str = "both") -> float | None:
        """Mean seconds per probe (as measured when it ran, cached or not) of the good side, the bad one, or both."""
        summaries = self.good if side == "good" else self.bad if side == "bad" else self.good + self.bad
        values = [s.seconds for s in summaries if s.seconds]
        return sum(values) / len(values) if values else None

    def to_json(self) -> dict:
        def side(summaries: list[ProbeSummary]) -> list[dict]:
            return [
                {
                    "seed": s.seed,
                    "label": s.label,
                    "onset": s.onset_step,
                    **{k: s.measures.get(k) for k in ("fg_auc", "final_bg_excess", "steps_to_learned")},
                    "precursors": s.precursors,
                    "warm_start": s.warm_start.to_json() if s.warm_start is not None else None,
                    "seconds": s.seconds,
                }
                for s in summaries
            ]

        return {
            "regime": self.regime.name,
            "summary": self.regime.summary,
            "overrides": list(self.regime.overrides),
            "usable": self.usable,
            "good": side(self.good),
            "bad": side(self.bad),
            "fisher_p": self.fisher_p,
            "p": self.p,
            "p_holm": self.p_holm,
            "cliffs_delta": self.delta,
            "separates": self.separates,
            "seconds_per_probe": {"good": self.seconds_per_probe("good"), "bad": self.seconds_per_probe("bad")},
        }


def stays_learned(summary: ProbeSummary, regime: Regime) -> bool:
    """Does the good config learn in this regime (one seed)? Cold: HEALTHY or TRANSIENT. Warm (good into
    good): phase 1 reached the learned level and phase 2 did not collapse (any label but COLLAPSED,
    FG_COLLAPSE, DIVERGED). Phase 1 stops at the first step its final window reaches the learned level, so
    the control starts phase 2 right at that level and its final FG falls below it by batch noise about as
    often as not; in a 10-40-step phase 2 that makes it INCONCLUSIVE ('not learned') without any loss of
    what it had learned. Requiring HEALTHY there would measure that noise (docs/validity.md section 9)."""
    if not is_warm(regime):
        return is_good(summary.label) is True
    return summary.warm_start is not None and summary.warm_start.phase1_learned and is_good(summary.label) is not False


def counts(summaries: list[ProbeSummary]) -> str:
    out: dict[str, int] = {}
    for s in summaries:
        out[s.label] = out.get(s.label, 0) + 1
    return " ".join(f"{k} {v}" for k, v in sorted(out.items())) or "-"


@dataclass
class Calibration:
    good: str
    bad: str
    seeds: list[int]
    min_good: int
    alpha: float
    min_delta: float
    warm: bool
    results: list[RegimeResult]
    overrides: tuple[str, ...] = ()  # the user's --set, part of what was measured
    chosen: RegimeResult | None = None
    confirmation: dict | None = None
    not_run: list[str] = field(default_factory=list)  # regimes skipped by the budget
    seconds: float = 0.0
    seed_batch: bool = False  # each side's seeds ran as one vectorised model

    @property
    def separated(self) -> bool:
        return self.chosen is not None and (self.confirmation is None or bool(self.confirmation.get("confirmed")))

    @property
    def exit_code(self) -> int:
        return 0 if self.separated else 3

    def regime_file(self) -> str | None:
        if self.chosen is None:
            return None
        r = self.chosen
        lines = [
            f"collapse-doctor regime '{r.regime.name}' ({r.regime.summary}), chosen by calibrate",
            f"good {self.good}: {counts(r.good)}; bad {self.bad}: {counts(r.bad)} (seeds "
            f"{self.seeds[0]}-{self.seeds[-1]})",
            f"primary measure {PRIMARY}: one-sided exact Mann-Whitney p = {r.p:.3g} (the first usable regime, the "
            f"only one the bad side was measured in), Cliff's delta {r.delta:.2f}; Fisher p on verdicts "
            f"{r.fisher_p:.3g}",
        ]
        if self.confirmation is not None:
            c = self.confirmation
            lines.append(
                f"confirmed on fresh seeds {c['seeds'][0]}-{c['seeds'][-1]}: p = {c['p']:.3g}, delta {c['delta']:.2f} "
                f"-> {'confirmed' if c['confirmed'] else 'NOT confirmed'}"
            )
        if self.seed_batch:
            lines.append(
                "measured with --seed-batch (each side's seeds as one vectorised model): compare with --seed-batch"
            )
        user = tuple(o for o in self.overrides if o.partition("=")[0].strip().split(".")[0] in REGIME_SECTIONS)
        if user:
            lines.append(f"with the --set overrides it was measured under: {' '.join(user)}")
        lines.append(
            f"seconds per probe where it was calibrated: good {r.seconds_per_probe('good') or 0:.0f}, bad "
            f"{r.seconds_per_probe('bad') or 0:.0f}; use: collapse-doctor probe|ablate|bisect|gate --regime THIS_FILE"
        )
        return regime_yaml((*r.regime.overrides, *user), lines)

    def to_json(self) -> dict:
        return {
            "good": self.good,
            "bad": self.bad,
            "seeds": self.seeds,
            "min_good": self.min_good,
            "alpha": self.alpha,
            "min_delta": self.min_delta,
            "warm_start": self.warm,
            "primary_measure": PRIMARY,
            "regimes": [r.to_json() for r in self.results],
            "not_run": self.not_run,
            "chosen": self.chosen.regime.name if self.chosen else None,
            "confirmation": self.confirmation,
            "separated": self.separated,
            "regime_file": self.regime_file(),
            "seconds": self.seconds,
            "seed_batch": self.seed_batch,
        }


def run_calibration(
    good: ConfigSource,
    bad: ConfigSource,
    *,
    settings: CalibrationSettings | None = None,
    progress: Callable[[str], None] | None = None,
    executor: Executor | None = None,
    on_probe: Callable[[int, int, ProbeSummary], None] | None = None,
    **fields,
) -> Calibration:
    """The grid, cheapest regime first, on the good side; the bad side in the first usable regime only;
    then a confirmation on fresh seeds: `settings`, or its fields as keywords. seed_batch: each side's
    seeds of a regime train as one vectorised model (train/seed_batch.py)."""
    s = settings if settings is not None else CalibrationSettings(**fields)
    s.check()
    if s.seed_batch and s.warm:
        raise ConfigError("--seed-batch with --warm-start: a seed batch does not run warm starts")
    seed_list = list(range(s.seeds))
    min_good = s.min_good if s.min_good is not None else math.ceil(0.8 * s.seeds)
    user = tuple(s.overrides)
    grid = [r if is_warm(r) else warm_variant(r) for r in s.regimes] if s.warm else list(s.regimes)
    result = Calibration(good.label, bad.label, seed_list, min_good, s.alpha, s.min_delta, s.warm, [], user)
    spent = 0.0

    def run(source: ConfigSource, regime: Regime, seed_range: list[int]) -> list[ProbeSummary]:
        nonlocal spent
        base = good if is_warm(regime) else None  # warm starts: phase 1 trains the good config for both sides
        if progress is not None:
            progress(f"{regime.name}: {source.label} seeds {seed_range[0]}-{seed_range[-1]}")
        together = tuple(seed_range) if s.seed_batch else None
        jobs = [
            source.job(
                regime, seed, preset=s.preset, data=s.data, device=s.device, user=user, base=base, seed_batch=together
            )
            for seed in seed_range
        ]
        out = run_jobs(jobs, jobs=s.jobs, cache_dir=s.cache_dir, executor=executor, progress=on_probe)
        spent += sum(summary.seconds for summary in out if not summary.cached)
        return out

    with sweep_executor(executor, s.jobs) as executor:  # one pool of workers for every round
        for regime in grid:
            if s.budget is not None and spent >= s.budget:
                result.not_run.append(regime.name)
                continue
            r = RegimeResult(regime, run(good, regime, seed_list))
            r.usable = sum(1 for summary in r.good if stays_learned(summary, regime)) >= min_good
            result.results.append(r)
            if not r.usable:
                continue
            _measure_bad_side(r, run(bad, regime, seed_list), s.alpha, s.min_delta)
            if r.separates:
                result.chosen = r
            break  # the first usable regime is the only one the bad side is measured in (module docstring)
        if result.chosen is not None and s.confirm:
            fresh = list(range(s.seeds, 2 * s.seeds))
            g, b = run(good, result.chosen.regime, fresh), run(bad, result.chosen.regime, fresh)
            result.confirmation = _confirmation(fresh, g, b, s.alpha, s.min_delta)
        result.seconds = spent
        result.seed_batch = s.seed_batch
        return result


def _measure_bad_side(r: RegimeResult, bad: list[ProbeSummary], alpha: float, min_delta: float) -> None:
    """The bad side's probes in a usable regime, compared with the good side's: the rank test decides,
    Fisher's test on the labels is reported beside it."""
    r.bad = bad
    comparison = compare(
        [s.measures.get(PRIMARY) for s in r.bad],
        [s.measures.get(PRIMARY) for s in r.good],
        PRIMARY,
        alpha=alpha,
        min_delta=min_delta,
    )
    r.p, r.delta = comparison.p, comparison.cliffs_delta
    r.fisher_p = fisher_exact(
        sum(1 for s in r.bad if is_good(s.label) is False),
        len(r.bad),
        sum(1 for s in r.good if is_good(s.label) is False),
        len(r.good),
    )
    r.p_holm = r.p  # one test: nothing to adjust
    r.separates = r.p_holm < alpha and r.delta is not None and r.delta >= min_delta


def _confirmation(
    seeds: list[int], good: list[ProbeSummary], bad: list[ProbeSummary], alpha: float, min_delta: float
) -> dict:
    """The chosen regime measured again on fresh seeds, by the same rule."""
    c = compare(
        [s.measures.get(PRIMARY) for s in bad],
        [s.measures.get(PRIMARY) for s in good],
        PRIMARY,
        alpha=alpha,
        min_delta=min_delta,
    )
    return {
        "seeds": seeds,
        "good": counts(good),
        "bad": counts(bad),
        "good_fg_auc": c.reference,
        "bad_fg_auc": c.candidate,
        "p": c.p,
        "delta": c.cliffs_delta,
        "confirmed": c.p < alpha and c.cliffs_delta >= min_delta,
    }
