"""bisect: the first commit whose config (or, with --cmd, whose code) makes training collapse.

history.py reads the commits and their configs; judges.py decides one config (probes on adaptive
seeds, or the user's command); search.py runs the binary search or the scan; result.py holds what it found;
minimize.py reduces the first bad commit's key changes (ddmin).
"""

from collapse_doctor.sweeps.bisect.history import CommitConfig, Segment, read_history, segments_of
from collapse_doctor.sweeps.bisect.judges import (
    BAD,
    GOOD,
    SKIP,
    CommandAborted,
    CommandJudge,
    Judgement,
    ProbeJudge,
    SeedPolicy,
    decision_of_exit_status,
)
from collapse_doctor.sweeps.bisect.minimize import Minimization, apply_changes, ddmin
from collapse_doctor.sweeps.bisect.result import LIMITATIONS, OUTCOME_EXIT, BisectResult, BisectStatus, Transition
from collapse_doctor.sweeps.bisect.search import Bisect, binary_search, run_bisect
from collapse_doctor.sweeps.bisect.settings import BisectSettings

__all__ = [
    "BAD",
    "GOOD",
    "LIMITATIONS",
    "OUTCOME_EXIT",
    "SKIP",
    "Bisect",
    "BisectResult",
    "BisectSettings",
    "BisectStatus",
    "CommandAborted",
    "CommandJudge",
    "CommitConfig",
    "Judgement",
    "Minimization",
    "ProbeJudge",
    "SeedPolicy",
    "Segment",
    "Transition",
    "apply_changes",
    "binary_search",
    "ddmin",
    "decision_of_exit_status",
    "read_history",
    "run_bisect",
    "segments_of",
]
