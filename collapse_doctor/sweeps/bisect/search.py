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
from dataclasses import dataclass, field
from pathlib import Path

from collapse_doctor.config.diff import KeyChange
from collapse_doctor.errors import CollapseDoctorError, ExitCode
from collapse_doctor.experiments.presets import PRESETS
from collapse_doctor.judge.measures import PRIMARY, MeasureRule, compare
from collapse_doctor.judge.stats import fisher_exact
from collapse_doctor.sweeps.bisect.history import CommitConfig, Segment, key_changes, read_history, segments_of
from collapse_doctor.sweeps.bisect.judges import (
    BAD,
    GOOD,
    SKIP,
    CommandJudge,
    Judgement,
    ProbeCounter,
    ProbeJudge,
    SeedPolicy,
)
from collapse_doctor.sweeps.bisect.minimize import Minimization, minimize_changes
from collapse_doctor.sweeps.executors import Executor
from collapse_doctor.sweeps.gitrepo import (
    CommitInfo,
    choose_config_path,
    config_path_from_pyproject,
    info,
    open_repo,
    read_file,
    repo_relative,
    resolve,
)

LIMITATIONS = (
    "bisect on configs sees only what the YAML changes: a commit that changed the user's own model, data "
    "pipeline or trainer code is invisible to it (the bundled model runs every config); use --cmd to judge "
    "commits with the user's own code."
)

# How each outcome exits: 0 an answer; 1 the premise failed (an endpoint behaved the other way, or the
# command asked to abort); 3 no single answer (undecided endpoint, or skipped commits hide it).
OUTCOME_EXIT = {
    "found": ExitCode.GOOD,
    "scanned": ExitCode.GOOD,
    "good_endpoint_bad": ExitCode.BAD,
    "bad_endpoint_good": ExitCode.BAD,
    "aborted": ExitCode.BAD,
    "good_endpoint_undecided": ExitCode.INCONCLUSIVE,
    "bad_endpoint_undecided": ExitCode.INCONCLUSIVE,
    "ambiguous": ExitCode.INCONCLUSIVE,
    "endpoint_invalid": ExitCode.BAD_INPUT,
    "error": ExitCode.BAD_INPUT,
    "interrupted": 130,
}


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
# The result
# --------------------------------------------------------------------------------------------------
@dataclass
class Transition:
    before: CommitConfig  # last commit of the earlier decided segment
    after: CommitConfig  # first commit of the next decided segment
    direction: str  # "good->bad" or "bad->good"
    changes: list[KeyChange]

    def to_json(self) -> dict:
        return {
            "before": self.before.info.hexsha,
            "after": self.after.info.hexsha,
            "after_info": self.after.info.to_json(),
            "direction": self.direction,
            "changes": [c.to_json() for c in self.changes],
        }


@dataclass
class BisectResult:
    outcome: str
    message: str
    repo: str
    config_path: str | None
    good_rev: str
    bad_rev: str
    good: CommitInfo | None = None
    bad: CommitInfo | None = None
    method: str = "bisect"  # bisect / scan
    judge: str = "probe"  # probe / cmd
    ran: dict = field(default_factory=dict)
    commits: list[CommitConfig] = field(default_factory=list)
    judgements: dict[int, Judgement] = field(default_factory=dict)  # segment index -> judgement
    segments: list[Segment] = field(default_factory=list)
    first_bad: CommitConfig | None = None
    parent: CommitConfig | None = None
    candidates: list[CommitConfig] = field(default_factory=list)  # ambiguous: the first bad is one of these
    changes: list[KeyChange] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    evidence: dict | None = None
    transitions: list[Transition] = field(default_factory=list)
    minimization: Minimization | None = None
    probes: ProbeCounter = field(default_factory=ProbeCounter)
    rounds: int = 0  # segments judged after the endpoints
    limitations: str = LIMITATIONS

    @property
    def exit_code(self) -> int:
        return int(OUTCOME_EXIT[self.outcome])

    def decision_of(self, commit: CommitConfig) -> str | None:
        for segment in self.segments:
            if commit in segment.commits:
                judgement = self.judgements.get(segment.index)
                return judgement.decision if judgement else (SKIP if not segment.testable else None)
        return None

    def untestable(self) -> list[CommitConfig]:
        return [c for c in self.commits if c.status != "ok"]

    def to_json(self) -> dict:
        return {
            "outcome": self.outcome,
            "message": self.message,
            "exit_code": self.exit_code,
            "method": self.method,
            "judge": self.judge,
            "repo": self.repo,
            "config": self.config_path,
            "good": {"rev": self.good_rev, **(self.good.to_json() if self.good else {})},
            "bad": {"rev": self.bad_rev, **(self.bad.to_json() if self.bad else {})},
            "ran": self.ran,
            "first_bad": self.first_bad.info.hexsha if self.first_bad else None,
            "first_bad_info": self.first_bad.info.to_json() if self.first_bad else None,
            "parent": self.parent.info.to_json() if self.parent else None,
            "candidates": [c.info.hexsha for c in self.candidates],
            "changes": [c.to_json() for c in self.changes],
            "files_changed": self.files_changed,
            "evidence": self.evidence,
            "transitions": [t.to_json() for t in self.transitions],
            "minimize": self.minimization.to_json() if self.minimization else None,
            "skipped": [{"hexsha": c.info.hexsha, "status": c.status, "problem": c.problem} for c in self.untestable()],
            "commits": [{**c.to_json(), "decision": self.decision_of(c)} for c in self.commits],
            "judgements": [
                {"segment": i, "commits": [c.info.hexsha for c in self.segments[i].commits], **j.to_json()}
                for i, j in sorted(self.judgements.items())
            ],
            "probes": vars(self.probes),
            "rounds": self.rounds,
            "limitations": self.limitations,
        }


@dataclass
class BisectStatus:
    """What the progress display shows."""

    phase: str  # reading / endpoints / bisect / scan / minimize
    commits_left: int | None = None
    rounds_left: int | None = None
    probes_run: int = 0
    probes_cached: int = 0
    current: str = ""


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
) -> BisectResult:
    """Bisect (or scan) the first-parent history from good_rev to bad_rev. `result`, when given, is
    filled in place as the run goes, so a caller that is interrupted still holds what was learned."""
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
            on_probe=lambda summary: report(),
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

        def classify(index: int) -> str:
            segment = segments[index]
            if not segment.testable:
                return SKIP
            report(current=f"{segment.first.info.short} {segment.first.info.subject[:40]}")
            if cmd_judge is not None:
                judgement = cmd_judge.judge(segment.first)
            else:
                judgement = probe_judge.judge(segment.first.text, f"{segment.first.info.short}:{config_path}")
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
        decisions = {"good": classify(0)}
        if probe_judge is not None and rule is not None and decisions["good"] == GOOD:
            probe_judge.rule, probe_judge.reference = (
                rule,
                [s.measures.get(rule.measure) for s in r.judgements[0].summaries],
            )
        decisions["bad"] = classify(len(segments) - 1)
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
        lo, hi, skipped = binary_search(
            len(segments),
            classify,
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
        if minimize and probe_judge is not None:
            report(phase="minimize", commits_left=None, rounds_left=None)
            r.minimization = minimize_changes(r.parent, r.changes, probe_judge, config_path, report)
    return r


def _evidence(r: BisectResult, lo: int, hi: int) -> None:
    good_j, bad_j = r.judgements.get(lo), r.judgements.get(hi)
    if good_j is None or bad_j is None:
        return
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
    r.evidence = evidence


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
