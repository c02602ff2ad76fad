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
from pathlib import Path

from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.experiments.presets import PRESETS
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
    SeedPolicy,
)
from collapse_doctor.sweeps.bisect.minimize import minimize_changes
from collapse_doctor.sweeps.bisect.result import (
    BisectResult,
    BisectStatus,
    Transition,
)
from collapse_doctor.sweeps.calibrate import ConfigSource
from collapse_doctor.sweeps.executors import Executor
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
    *,
    good_rev: str,
    bad_rev: str = "HEAD",
    repo_path: str | Path = ".",
    config_path: str | None = None,
    overrides: list[str] | None = None,
    preset: str = "tiny",
    steps: int | None = None,
    policy: SeedPolicy = SeedPolicy(),
    scan: bool = False,
    minimize: bool = False,
    command: str | None = None,
    command_timeout: float | None = None,
    jobs: int = 1,
    cache_dir=None,
    data: str = "arc-agi-1",
    device: str = "cpu",
    progress: Callable[[BisectStatus], None] | None = None,
    result: BisectResult | None = None,
    executor: Executor | None = None,
    rule: MeasureRule | None = None,
    auto_regime: bool = False,
) -> BisectResult:
    """Bisect (or scan) the first-parent history from good_rev to bad_rev. `result`, when given, is
    filled in place as the run goes, so a caller that is interrupted still holds what was learned.
    auto_regime: no regime was named, so calibrate on the two endpoints first (sweeps/autoregime.py) and
    bisect in the cheapest regime where the good endpoint stays learned, if the bad one separates there."""
    if preset not in PRESETS:
        raise CollapseDoctorError(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
    if policy.first < 1 or policy.cap < policy.first:
        raise CollapseDoctorError(f"--seeds {policy.first} / --max-seeds {policy.cap}: need 1 <= seeds <= max-seeds")
    if rule is not None and policy.first < 4:
        raise CollapseDoctorError(
            f"--by measure needs --seeds 4 or more: with {policy.first} seeds a side the exact rank test cannot reach "
            "p < 0.05 (3 vs 3: p >= 0.05)"
        )
    if rule is not None and command is not None:
        raise CollapseDoctorError("--by measure judges probes; it cannot be combined with --cmd")
    if minimize and command is not None:
        raise CollapseDoctorError("--minimize works on config keys; it cannot be combined with --cmd")
    overrides = list(overrides or []) + ([f"probe.steps={steps}"] if steps is not None else [])
    r = (
        result
        if result is not None
        else BisectResult("interrupted", "", str(repo_path), config_path, good_rev, bad_rev)
    )
    r.outcome, r.message, r.method, r.judge = (
        "interrupted",
        "interrupted before an answer",
        "scan" if scan else "bisect",
        "cmd" if command else "probe",
    )
    probe_judge = None
    if command is None:
        probe_judge = ProbeJudge(
            overrides=overrides,
            preset=preset,
            data=data,
            device=device,
            policy=policy,
            jobs=jobs,
            cache_dir=cache_dir,
            on_probe=lambda summary: report(last=summary),
            executor=executor,
        )
        r.probes = probe_judge.counter
    status = BisectStatus("reading")

    def report(**changes) -> None:
        for k, v in changes.items():
            setattr(status, k, v)
        if probe_judge is not None:
            status.probes_run, status.probes_cached = probe_judge.counter.run, probe_judge.counter.cached
        if progress is not None:
            progress(status)

    repo = open_repo(repo_path)
    r.repo = repo.working_tree_dir or repo.git_dir
    good, bad = resolve(repo, good_rev), resolve(repo, bad_rev)
    r.good, r.bad = info(good), info(bad)
    if command is None:
        config_path = choose_config_path(repo, bad, config_path)
    else:  # --cmd judges without a config; one is read only to show what the first bad commit changed
        config_path = repo_relative(repo, config_path) if config_path else config_path_from_pyproject(repo, bad)
    r.config_path = config_path
    r.notes = history_notes(repo, bad, config_path)
    report(notes=r.notes)
    if auto_regime and probe_judge is not None:
        good_text, bad_text = read_file(good, config_path), read_file(bad, config_path)
        if good_text is not None and bad_text is not None:
            report(phase="calibrating")
            r.auto_regime = choose_regime(
                ConfigSource(f"{good.hexsha[:7]}:{config_path}", text=good_text),
                ConfigSource(f"{bad.hexsha[:7]}:{config_path}", text=bad_text),
                seeds=max(policy.first, 4),
                overrides=overrides,
                preset=preset,
                data=data,
                device=device,
                jobs=jobs,
                cache_dir=cache_dir,
                executor=executor,
                progress=lambda text: report(current=text),
                on_probe=probe_judge.count,
            )
            if r.auto_regime.regime is None:
                r.outcome, r.message = (
                    "no_regime",
                    "no regime of the default grid separates the good endpoint from the bad one: in each, the good "
                    "endpoint did not stay learned or the bad one did not separate (calibrate's table)",
                )
                return r
            overrides = [*r.auto_regime.regime.overrides, *overrides]
            probe_judge.overrides = list(overrides)
    r.ran = {
        "preset": preset,
        "overrides": overrides,
        "seeds": policy.first,
        "max_seeds": policy.cap,
        "data": data,
        "device": device,
        "command": command,
        "scan": scan,
        "minimize": minimize,
        "by": "measure" if rule else "verdict",
        "regime": r.auto_regime.regime.name if r.auto_regime and r.auto_regime.regime else None,
        "rule": rule.text()
        if rule
        else "verdict classes: good HEALTHY/TRANSIENT, bad COLLAPSED/FG_COLLAPSE/DIVERGED, by seed agreement or a "
        "majority at the cap",
    }
    report()
    if probe_judge is not None:
        probe_judge.base_text, probe_judge.base_source = (
            read_file(good, config_path),
            f"{good.hexsha[:7]}:{config_path}",
        )
    r.commits = read_history(repo, good, bad, config_path, probe_judge.identity if probe_judge is not None else None)
    r.segments = segments = segments_of(r.commits)

    cmd_judge = CommandJudge(repo, command, command_timeout) if command is not None else None
    with cmd_judge if cmd_judge is not None else contextlib.nullcontext():

        def classify(index: int, question=None) -> str:
            """question: a decision on the seeds' measure (CollapseScale.collapsed or .worse); default the
            judge's own (verdict classes, or --by measure against the good endpoint)."""
            segment = segments[index]
            if not segment.testable:
                return SKIP
            report(current=f"{segment.first.info.short} {segment.first.info.subject[:40]}")
            if cmd_judge is not None:
                judgement = cmd_judge.judge(segment.first)
            else:
                decide = (lambda ss: probe_judge.by_measure(ss, question)) if question is not None else None
                judgement = probe_judge.judge(
                    segment.first.text, f"{segment.first.info.short}:{config_path}", decide=decide
                )
            r.judgements[index] = judgement
            return judgement.decision

        # Endpoints first: the premise of a bisect is that GOOD is good and BAD is bad.
        report(phase="endpoints", commits_left=len(r.commits))
        for which, segment in (("good", segments[0]), ("bad", segments[-1])):
            if not segment.testable:
                commit = segment.first
                r.outcome, r.message = (
                    "endpoint_invalid",
                    f"the {which} endpoint {commit.info.short} has no usable config: {commit.problem}",
                )
                return r
        # Both are judged before anything else, so a stop can say which one surprised (or both did).
        if probe_judge is not None and rule is not None:
            report(current=f"{segments[0].first.info.short} and {segments[-1].first.info.short}")
            decisions = _endpoints_by_measure(r, segments, probe_judge, rule, config_path)
        else:
            decisions = {"good": classify(0), "bad": classify(len(segments) - 1)}
        surprises = []
        for which, index, expected in (("good", 0, GOOD), ("bad", len(segments) - 1, BAD)):
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
        if surprises and not scan:
            r.outcome = surprises[0][0]
            r.message = "; ".join(text for _, text in surprises) + ": nothing to bisect"
            if any(kind == "good_endpoint_bad" for kind, _ in surprises):
                r.message += (
                    ". In this regime the known-good config collapses too, so probes cannot tell the two apart: "
                    "run `collapse-doctor calibrate --good GOOD --bad BAD --repo . --write regime.yaml` to find a "
                    "regime where the good "
                    "endpoint learns, then bisect with --regime regime.yaml, or test module activation with "
                    "--warm-start auto"
                )
            _evidence(r, 0, len(segments) - 1)
            return r

        if scan:
            _scan(r, segments, classify, report)
            return r
        collapse_question = (lambda i: classify(i, r.scale.collapsed)) if r.scale is not None else classify
        lo, hi, skipped = binary_search(
            len(segments),
            collapse_question,
            on_step=lambda lo, hi, cands: report(
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
            return r
        r.first_bad, r.parent = segments[hi].first, segments[hi - 1].last
        r.changes = key_changes(r.parent, r.first_bad)
        r.files_changed = repo.git.diff("--name-only", r.parent.info.hexsha, r.first_bad.info.hexsha).split()
        _evidence(r, lo, hi)
        r.outcome = "found"
        r.message = f"first bad commit {r.first_bad.info.short} ({r.first_bad.info.subject})"
        if r.scale is not None:
            _degradation(r, repo, segments, hi, classify, report)
            r.message = f"first collapsed commit {r.first_bad.info.short} ({r.first_bad.info.subject})" + (
                f"; degraded before it from {r.first_degraded.info.short} ({r.first_degraded.info.subject})"
                if r.first_degraded is not None
                else "; no commit before it was degraded"
            )
        if minimize and probe_judge is not None:
            report(phase="minimize", commits_left=None, rounds_left=None)
            r.minimization = minimize_changes(r.parent, r.changes, probe_judge, config_path, report)
    return r


def _endpoints_by_measure(r: BisectResult, segments, judge: ProbeJudge, rule: MeasureRule, config_path) -> dict:
    """--by measure: the good endpoint is the reference, probed on policy.first seeds and never extended
    (its labels may differ; only a majority that collapsed, or whose phase 1 never learned, refuses it).
    The bad endpoint is classified against it by the rule, adding seeds while undecided. Their measures
    then define the scale every commit is placed on."""
    first, last = segments[0], segments[-1]

    def failed(summary) -> bool:
        warm = summary.warm_start
        return summary.good is False or (warm is not None and not warm.get("phase1_learned"))

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


def _degradation(r: BisectResult, repo, segments, collapsed_at: int, classify, report) -> None:
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
