"""bisect: the first commit whose config makes training collapse (the search and its result).

The history is read from git objects only (`gitrepo`): the config at every first-parent commit between
GOOD and BAD, parsed and resolved with the preset. Consecutive commits whose resolved configs are
equal form one *segment*: they would run the same probes, so the search runs over segments, and
segments with equal configs anywhere in the history share their probes (a memo here, the probe cache
across runs). A commit whose config is missing or invalid is untestable, as `git bisect skip`.

A config is judged on several seeds, adaptively as Chromium's Pinpoint does: K seeds, more while they
disagree (or any is INCONCLUSIVE), up to a cap; at the cap a strict majority decides, otherwise the
config is undecided and its commits count as skipped.

With `--cmd` the user's own command judges each commit in a temporary shared clone, with the exit-code
contract of `git bisect run`; then every commit is its own segment (the code may change, not only the
config).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

from collapse_doctor.judge.measures import PRIMARY, CollapseScale, MeasureRule, compare
from collapse_doctor.judge.stats import fisher_exact
from collapse_doctor.sweeps.autoregime import choose_regime
from collapse_doctor.sweeps.bisect.history import Segment, key_changes, read_history, segments_of
from collapse_doctor.sweeps.bisect.judges import (
    BAD,
    GOOD,
    SKIP,
    CommandJudge,
    ProbeJudge,
)
from collapse_doctor.sweeps.bisect.minimize import minimize_changes
from collapse_doctor.sweeps.bisect.result import (
    BisectResult,
    BisectStatus,
    Transition,
)
from collapse_doctor.sweeps.bisect.settings import BisectSettings
from collapse_doctor.sweeps.calibrate import ConfigSource
from collapse_doctor.sweeps.executors import Executor, sweep_executor
from collapse_doctor.sweeps.gitrepo import (
    choose_config_path,
    config_path_from_pyproject,
    history_notes,
    info,
    open_repo,
    read_file,
    repo_relative,
    resolve,
)


# --------------------------------------------------------------------------------------------------
# Search strategies (pure: a classify callback decides each segment)
# --------------------------------------------------------------------------------------------------
def binary_search(
    count: int, classify: Callable[[int], str], on_step: Callable[[int, int, list[int]], None] | None = None
) -> tuple[int, int, list[int]]:
    """Positions 0 (good) and count-1 (bad) are known. Returns (last good, first bad, skipped between):
    the first bad position is `first bad` when nothing is skipped between them, else one of the skipped
    or `first bad`. Among untested positions the one nearest the middle is tested next."""
    lo, hi = 0, count - 1
    skipped: set[int] = set()
    while True:
        candidates = [i for i in range(lo + 1, hi) if i not in skipped]
        if on_step is not None:
            on_step(lo, hi, candidates)
        if not candidates:
            break
        middle = (lo + hi) / 2
        i = min(candidates, key=lambda c: (abs(c - middle), c))
        decision = classify(i)
        if decision == GOOD:
            lo = i
        elif decision == BAD:
            hi = i
        else:
            skipped.add(i)
    return lo, hi, sorted(i for i in skipped if lo < i < hi)


# --------------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------------
def run_bisect(
    settings: BisectSettings | None = None,
    *,
    progress: Callable[[BisectStatus], None] | None = None,
    result: BisectResult | None = None,
    executor: Executor | None = None,
    **fields,
) -> BisectResult:
    """Bisect (or scan) the first-parent history from good_rev to bad_rev: `settings`, or its fields as
    keywords. `result`, when given, is filled in place as the run goes, so a caller that is interrupted
    still holds what was learned."""
    settings = settings if settings is not None else BisectSettings(**fields)
    with sweep_executor(executor, settings.jobs) as executor:  # one pool of workers for every round
        return Bisect(settings, progress=progress, result=result, executor=executor).run()


class Bisect:
    """One bisect, in its phases: check, set up (and calibrate), endpoints, search, conclude."""

    def __init__(
        self,
        settings: BisectSettings,
        *,
        progress: Callable[[BisectStatus], None] | None = None,
        result: BisectResult | None = None,
        executor: Executor | None = None,
    ):
        s = self.settings = settings
        self.progress, self.executor = progress, executor
        self.result = (
            result
            if result is not None
            else BisectResult("interrupted", "", str(s.repo_path), s.config_path, s.good_rev, s.bad_rev)
        )
        self.overrides = list(s.overrides) + ([f"probe.steps={s.steps}"] if s.steps is not None else [])
        self.status = BisectStatus("reading")
        self.probe_judge: ProbeJudge | None = None
        self.cmd_judge: CommandJudge | None = None

    def run(self) -> BisectResult:
        self.settings.check()
        r = self.result
        self._set_up()
        if self.settings.auto_regime and self.probe_judge is not None and not self._calibrate():
            return r
        self._record_what_runs()
        r.commits = read_history(
            self.repo, self.good, self.bad, self.config_path, self.probe_judge.identity if self.probe_judge else None
        )
        r.segments = self.segments = segments_of(r.commits)
        s = self.settings
        self.cmd_judge = CommandJudge(self.repo, s.command, s.command_timeout) if s.command is not None else None
        with self.cmd_judge if self.cmd_judge is not None else contextlib.nullcontext():
            if not self._endpoints():
                return r
            if s.scan:
                _scan(r, self.segments, self._classify, self._report)
                return r
            self._search()
        return r

    # -- set up ----------------------------------------------------------------------------------------
    def _report(self, **changes) -> None:
        for k, v in changes.items():
            setattr(self.status, k, v)
        if self.probe_judge is not None:
            self.status.probes_run = self.probe_judge.counter.run
            self.status.probes_cached = self.probe_judge.counter.cached
        if self.progress is not None:
            self.progress(self.status)

    def _set_up(self) -> None:
        s, r = self.settings, self.result
        r.outcome, r.message = "interrupted", "interrupted before an answer"
        r.method, r.judge = ("scan" if s.scan else "bisect"), ("cmd" if s.command else "probe")
        if s.command is None:
            self.probe_judge = ProbeJudge(
                overrides=self.overrides,
                preset=s.preset,
                data=s.data,
                device=s.device,
                policy=s.policy,
                jobs=s.jobs,
                cache_dir=s.cache_dir,
                on_probe=lambda summary: self._report(last=summary),
                executor=self.executor,
            )
            r.probes = self.probe_judge.counter
        repo = self.repo = open_repo(s.repo_path)
        r.repo = repo.working_tree_dir or repo.git_dir
        self.good, self.bad = resolve(repo, s.good_rev), resolve(repo, s.bad_rev)
        r.good, r.bad = info(self.good), info(self.bad)
        if s.command is None:
            self.config_path = choose_config_path(repo, self.bad, s.config_path)
        else:  # --cmd judges without a config; one is read only to show what the first bad commit changed
            self.config_path = (
                repo_relative(repo, s.config_path) if s.config_path else config_path_from_pyproject(repo, self.bad)
            )
        r.config_path = self.config_path
        # a warm start's base and calibration's good side (--cmd may have no config path)
        self.good_text = read_file(self.good, self.config_path) if self.config_path is not None else None
        r.notes = history_notes(repo, self.bad, self.config_path)
        self._report(notes=r.notes)

    def _source(self, commit) -> str:
        return f"{commit.hexsha[:7]}:{self.config_path}"

    def _calibrate(self) -> bool:
        """No regime named: choose one on the endpoints (sweeps/autoregime.py). False: none separates them."""
        s, r, judge = self.settings, self.result, self.probe_judge
        good_text, bad_text = self.good_text, read_file(self.bad, self.config_path)
        if good_text is None or bad_text is None:
            return True  # the endpoint check names the missing config
        self._report(phase="calibrating")
        r.auto_regime = choose_regime(
            ConfigSource(self._source(self.good), text=good_text),
            ConfigSource(self._source(self.bad), text=bad_text),
            seeds=max(s.policy.first, 4),
            overrides=self.overrides,
            preset=s.preset,
            data=s.data,
            device=s.device,
            jobs=s.jobs,
            cache_dir=s.cache_dir,
            executor=self.executor,
            progress=lambda text: self._report(current=text),
            on_probe=judge.count,
        )
        if r.auto_regime.regime is None:
            r.outcome, r.message = (
                "no_regime",
                "no regime of the default grid separates the good endpoint from the bad one: in each, the good "
                "endpoint did not stay learned or the bad one did not separate (calibrate's table)",
            )
            return False
        self.overrides = [*r.auto_regime.regime.overrides, *self.overrides]
        judge.overrides = list(self.overrides)
        return True

    def _record_what_runs(self) -> None:
        s, r = self.settings, self.result
        r.ran = {
            "preset": s.preset,
            "overrides": self.overrides,
            "seeds": s.policy.first,
            "max_seeds": s.policy.cap,
            "data": s.data,
            "device": s.device,
            "command": s.command,
            "scan": s.scan,
            "minimize": s.minimize,
            "by": "measure" if s.rule else "verdict",
            "regime": r.auto_regime.regime.name if r.auto_regime and r.auto_regime.regime else None,
            "rule": s.rule.text()
            if s.rule
            else "verdict classes: good HEALTHY/TRANSIENT, bad COLLAPSED/FG_COLLAPSE/DIVERGED, by seed agreement or "
            "a majority at the cap",
        }
        self._report()
        if self.probe_judge is not None:
            self.probe_judge.base_text = self.good_text
            self.probe_judge.base_source = self._source(self.good)

    # -- judging ---------------------------------------------------------------------------------------
    def _classify(self, index: int, question=None) -> str:
        """question: a decision on the seeds' measure (CollapseScale.collapsed or .worse); default the
        judge's own (verdict classes, or --by measure against the good endpoint)."""
        segment = self.segments[index]
        if not segment.testable:
            return SKIP
        self._report(current=f"{segment.first.info.short} {segment.first.info.subject[:40]}")
        if self.cmd_judge is not None:
            judgement = self.cmd_judge.judge(segment.first)
        else:
            judge = self.probe_judge
            decide = (lambda ss: judge.by_measure(ss, question)) if question is not None else None
            judgement = judge.judge(segment.first.text, f"{segment.first.info.short}:{self.config_path}", decide=decide)
        self.result.judgements[index] = judgement
        return judgement.decision

    def _endpoints(self) -> bool:
        """The premise of a bisect is that GOOD is good and BAD is bad. Both are judged before anything
        else, so a stop can say which one surprised (or both did). False: the bisect stops here."""
        r, segments, last = self.result, self.segments, len(self.segments) - 1
        self._report(phase="endpoints", commits_left=len(r.commits))
        for which, segment in (("good", segments[0]), ("bad", segments[-1])):
            if not segment.testable:
                commit = segment.first
                r.outcome, r.message = (
                    "endpoint_invalid",
                    f"the {which} endpoint {commit.info.short} has no usable config: {commit.problem}",
                )
                return False
        if self.probe_judge is not None and self.settings.rule is not None:
            self._report(current=f"{segments[0].first.info.short} and {segments[-1].first.info.short}")
            decisions = _endpoints_by_measure(r, segments, self.probe_judge, self.settings.rule, self.config_path)
        else:
            decisions = {"good": self._classify(0), "bad": self._classify(last)}
        surprises = []
        for which, index, expected in (("good", 0, GOOD), ("bad", last, BAD)):
            decision = decisions[which]
            if decision != expected:
                commit, j = segments[index].first, r.judgements[index]
                surprises.append(
                    (
                        f"{which}_endpoint_{'undecided' if decision == SKIP else decision}",
                        f"the {which} endpoint {commit.info.short} was judged {decision} ({j.counts_text()}), not "
                        f"{expected}",
                    )
                )
        if not surprises or self.settings.scan:
            return True
        r.outcome = surprises[0][0]
        r.message = "; ".join(text for _, text in surprises) + ": nothing to bisect"
        if any(kind == "good_endpoint_bad" for kind, _ in surprises):
            r.message += (
                ". In this regime the known-good config collapses too, so probes cannot tell the two apart: "
                "run `collapse-doctor calibrate --good GOOD --bad BAD --repo . --write regime.yaml` to find a "
                "regime where the good endpoint learns, then bisect with --regime regime.yaml, or test module "
                "activation with --warm-start auto"
            )
        _evidence(r, 0, last)
        return False

    # -- search and conclusion -------------------------------------------------------------------------
    def _search(self) -> None:
        """The first collapsed segment (on the endpoints' scale, when there is one), then before it the first
        degraded one, its key changes, and with --minimize the fewest of them that still collapse."""
        r, segments = self.result, self.segments
        collapse_question = (lambda i: self._classify(i, r.scale.collapsed)) if r.scale is not None else self._classify
        lo, hi, skipped = binary_search(
            len(segments),
            collapse_question,
            on_step=lambda lo, hi, cands: self._report(
                phase="bisect",
                commits_left=sum(len(s.commits) for s in segments[lo + 1 : hi]),
                rounds_left=math.ceil(math.log2(len(cands) + 1)),
            ),
        )
        r.rounds = len(r.judgements) - 2
        if skipped:
            r.candidates = [segments[i].first for i in skipped] + [segments[hi].first]
            r.outcome = "ambiguous"
            r.message = (
                "skipped commits hide the answer: the first bad commit is one of "
                f"{', '.join(c.info.short for c in r.candidates)}"
            )
            _evidence(r, lo, hi)
            return
        r.first_bad, r.parent = segments[hi].first, segments[hi - 1].last
        r.changes = key_changes(r.parent, r.first_bad)
        r.files_changed = self.repo.git.diff("--name-only", r.parent.info.hexsha, r.first_bad.info.hexsha).split()
        _evidence(r, lo, hi)
        r.outcome = "found"
        r.message = f"first bad commit {r.first_bad.info.short} ({r.first_bad.info.subject})"
        if r.scale is not None:
            _degradation(r, segments, hi, self._classify, self._report)
            r.message = f"first collapsed commit {r.first_bad.info.short} ({r.first_bad.info.subject})" + (
                f"; degraded before it from {r.first_degraded.info.short} ({r.first_degraded.info.subject})"
                if r.first_degraded is not None
                else "; no commit before it was degraded"
            )
        if self.settings.minimize and self.probe_judge is not None:
            self._report(phase="minimize", commits_left=None, rounds_left=None)
            r.minimization = minimize_changes(r.parent, r.changes, self.probe_judge, self.config_path, self._report)


def _endpoints_by_measure(r: BisectResult, segments, judge: ProbeJudge, rule: MeasureRule, config_path) -> dict:
    """--by measure: the good endpoint is the reference, probed on policy.first seeds and never extended
    (its labels may differ; only a majority that collapsed, or whose phase 1 never learned, refuses it).
    The bad endpoint is classified against it by the rule, adding seeds while undecided. Their measures
    then define the scale every commit is placed on."""
    first, last = segments[0], segments[-1]

    def failed(summary) -> bool:
        warm = summary.warm_start
        return summary.good is False or (warm is not None and not warm.phase1_learned)

    def reference_decision(summaries) -> str | None:
        if len(summaries) < judge.policy.first:
            return None
        return BAD if 2 * sum(1 for s in summaries if failed(s)) > len(summaries) else GOOD

    good_j = judge.judge(first.first.text, f"{first.first.info.short}:{config_path}", decide=reference_decision)
    r.judgements[0] = good_j
    if good_j.decision != GOOD:
        return {"good": good_j.decision, "bad": BAD}
    reference = [s.measures.get(rule.measure) for s in good_j.summaries]
    judge.rule, judge.reference = rule, reference
    bad_j = judge.judge(last.first.text, f"{last.first.info.short}:{config_path}")
    r.judgements[len(segments) - 1] = bad_j
    judge.bad_reference = [v for s in bad_j.summaries if (v := s.measures.get(rule.measure)) is not None]
    if bad_j.decision == BAD:
        r.scale = CollapseScale(
            tuple(v for v in reference if v is not None),
            tuple(v for s in bad_j.summaries if (v := s.measures.get(rule.measure)) is not None),
            rule,
        )
    return {"good": GOOD, "bad": bad_j.decision}


def _degradation(r: BisectResult, segments, collapsed_at: int, classify, report) -> None:
    """Before the first collapsed segment, the first one worse than the good endpoint (sharing probes with
    the collapse search), and each judged segment's class on the endpoints' scale."""
    lo, hi, skipped = binary_search(
        collapsed_at + 1,
        lambda i: classify(i, r.scale.worse),
        on_step=lambda lo, hi, cands: report(phase="degradation", rounds_left=math.ceil(math.log2(len(cands) + 1))),
    )
    if hi < collapsed_at and not skipped:
        r.first_degraded, r.degraded_parent = segments[hi].first, segments[hi - 1].last
        r.degraded_changes = key_changes(r.degraded_parent, r.first_degraded)
        r.degraded_evidence = _evidence_of(r, lo, hi)
    for index, judgement in r.judgements.items():
        r.classes[index] = r.scale.classify([s.measures.get(PRIMARY) for s in judgement.summaries])


def _evidence(r: BisectResult, lo: int, hi: int) -> None:
    evidence = _evidence_of(r, lo, hi)
    if evidence is not None:
        r.evidence = evidence


def _evidence_of(r: BisectResult, lo: int, hi: int) -> dict | None:
    good_j, bad_j = r.judgements.get(lo), r.judgements.get(hi)
    if good_j is None or bad_j is None:
        return None
    evidence = {
        "good_side": {"commit": r.segments[lo].first.info.hexsha, **good_j.to_json()},
        "bad_side": {"commit": r.segments[hi].first.info.hexsha, **bad_j.to_json()},
    }
    if good_j.summaries and bad_j.summaries:
        evidence["p_value"] = fisher_exact(bad_j.bad, bad_j.seeds, good_j.bad, good_j.seeds)
        good_c, bad_c = r.segments[lo].first.info.short, r.segments[hi].first.info.short
        evidence["text"] = (
            f"{bad_c}: {bad_j.bad} of {bad_j.seeds} seeds collapsed; {good_c}: {good_j.bad} of {good_j.seeds} "
            f"(Fisher's exact p = {evidence['p_value']:.3g})"
        )
        if r.ran.get("by") == "measure":
            c = compare(
                [s.measures.get(PRIMARY) for s in bad_j.summaries], [s.measures.get(PRIMARY) for s in good_j.summaries]
            )
            evidence["measure"] = c.to_json()
            evidence["text"] += (
                f"; {PRIMARY} {_values(c.candidate)} vs {_values(c.reference)}: one-sided exact Mann-Whitney p = "
                f"{c.p:.3g}, Cliff's delta {c.cliffs_delta:.2f}"
            )
    return evidence


def _values(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def _scan(r: BisectResult, segments: list[Segment], classify, report) -> None:
    decided: list[tuple[Segment, str]] = []
    for segment in segments:
        report(phase="scan", commits_left=sum(len(s.commits) for s in segments[segment.index :]), rounds_left=None)
        decision = r.judgements[segment.index].decision if segment.index in r.judgements else classify(segment.index)
        if decision in (GOOD, BAD):
            decided.append((segment, decision))
    r.rounds = len(r.judgements)
    for (before, a), (after, b) in zip(decided, decided[1:]):
        if a != b:
            r.transitions.append(
                Transition(before.last, after.first, f"{a}->{b}", key_changes(before.last, after.first))
            )
    first = next((t for t in r.transitions if t.direction == "good->bad"), None)
    if first is not None:
        r.first_bad = first.after
        r.parent = r.commits[r.commits.index(first.after) - 1]
        r.changes = key_changes(r.parent, r.first_bad)
    r.outcome = "scanned"
    r.message = f"{len(r.transitions)} transition{'s' if len(r.transitions) != 1 else ''}: " + (
        ", ".join(f"{t.direction} at {t.after.info.short}" for t in r.transitions) or "none"
    )
