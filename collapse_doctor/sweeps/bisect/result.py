"""What a bisect found: the outcome and its exit code, the commits judged, the first collapsed (and first
degraded) commit with the config keys it changed, and the evidence; what the progress display shows."""

from __future__ import annotations

from dataclasses import dataclass, field

from collapse_doctor.config.diff import KeyChange
from collapse_doctor.errors import ExitCode
from collapse_doctor.judge.measures import CollapseScale
from collapse_doctor.sweeps.autoregime import AutoRegime
from collapse_doctor.sweeps.bisect.history import CommitConfig, Segment
from collapse_doctor.sweeps.bisect.judges import SKIP, Judgement, ProbeCounter
from collapse_doctor.sweeps.bisect.minimize import Minimization
from collapse_doctor.sweeps.gitrepo import CommitInfo

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
    "no_regime": ExitCode.INCONCLUSIVE,
    "endpoint_invalid": ExitCode.BAD_INPUT,
    "error": ExitCode.BAD_INPUT,
    "interrupted": 130,
}


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
    auto_regime: AutoRegime | None = None  # the regime chosen (or reused) because none was named
    scale: CollapseScale | None = None  # --by measure: the endpoints' measures
    classes: dict[int, str | None] = field(default_factory=dict)  # segment -> collapsed / degraded / good
    first_degraded: CommitConfig | None = None  # the first commit worse than the good endpoint, before the collapse
    degraded_parent: CommitConfig | None = None
    degraded_changes: list[KeyChange] = field(default_factory=list)
    degraded_evidence: dict | None = None
    notes: list[str] = field(default_factory=list)  # about the history itself: a shallow clone, uncommitted edits

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
            "notes": self.notes,
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
            "regime": self.auto_regime.to_json() if self.auto_regime else None,
            "scale": self.scale.text() if self.scale else None,
            "classes": {
                self.segments[i].first.info.hexsha: c for i, c in sorted(self.classes.items()) if i < len(self.segments)
            },
            "first_degraded": self.first_degraded.info.to_json() if self.first_degraded else None,
            "degraded_parent": self.degraded_parent.info.to_json() if self.degraded_parent else None,
            "degraded_changes": [c.to_json() for c in self.degraded_changes],
            "degraded_evidence": self.degraded_evidence,
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
    notes: list[str] = field(default_factory=list)  # said once, before any probe (BisectResult.notes)
    last: object = None  # the probe that just finished (a ProbeSummary), for a line per probe in a log
