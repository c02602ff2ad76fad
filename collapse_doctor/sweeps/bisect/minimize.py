"""--minimize: Zeller's delta debugging over the key changes of the first bad commit, each trial a
config judged on adaptive seeds, the smallest failing set confirmed on fresh seeds."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from collapse_doctor.config.diff import ABSENT, KeyChange, parse_raw
from collapse_doctor.errors import CollapseDoctorError
from collapse_doctor.sweeps.bisect.history import CommitConfig
from collapse_doctor.sweeps.bisect.judges import BAD, GOOD, Judgement, ProbeJudge


def ddmin(changes: list, fails: Callable[[list], bool | None]) -> list:
    """Zeller's delta debugging: a 1-minimal subset of `changes` for which `fails` is True (the full
    list must fail, the empty one pass). `fails` may answer None (unresolved, e.g. an invalid config),
    which counts as not failing."""
    current, n = list(changes), 2
    while len(current) >= 2:
        subsets = [current[i * len(current) // n : (i + 1) * len(current) // n] for i in range(n)]
        reduced = False
        for subset in subsets:
            if fails(subset) is True:
                current, n, reduced = subset, 2, True
                break
        if not reduced and n > 2:  # with two halves the complements are the halves themselves
            for subset in subsets:
                complement = [c for c in current if c not in subset]
                if fails(complement) is True:
                    current, n, reduced = complement, max(n - 1, 2), True
                    break
        if not reduced:
            if n >= len(current):
                break
            n = min(len(current), 2 * n)
    return current


def apply_changes(raw: dict, changes: list[KeyChange]) -> dict:
    """A copy of raw YAML data with the given key changes applied (ABSENT deletes the key)."""
    out = copy.deepcopy(raw)
    for change in changes:
        *parents, last = change.key.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if change.new == ABSENT:
            node.pop(last, None)
        else:
            node[last] = change.new
    return out


@dataclass
class Minimization:
    changes: list[KeyChange]  # the smallest set found
    trials: list[dict]  # {keys, decision, counts}
    confirmed: bool
    confirmation: Judgement | None

    def to_json(self) -> dict:
        return {
            "changes": [c.to_json() for c in self.changes],
            "trials": self.trials,
            "confirmed": self.confirmed,
            "confirmation": self.confirmation.to_json() if self.confirmation else None,
        }


def minimize_changes(
    parent: CommitConfig, changes: list[KeyChange], judge: ProbeJudge, config_path: str, report
) -> Minimization:
    """ddmin over the key changes of the first bad commit, each trial judged on adaptive seeds; the
    final set is confirmed on fresh seeds (a re-run that could disagree, unlike a cache hit)."""
    good_raw = parse_raw(parent.text, parent.info.short)
    trials: list[dict] = []
    memo: dict[tuple[str, ...], bool | None] = {}

    def text_of(subset: list[KeyChange]) -> str:
        return yaml.safe_dump(apply_changes(good_raw, subset), sort_keys=False)

    def fails(subset: list[KeyChange]) -> bool | None:
        keys = tuple(c.key for c in subset)
        if keys in memo:
            return memo[keys]
        report(current="trial: " + (", ".join(keys) or "no change"))
        try:
            judgement = judge.judge(
                text_of(subset), f"{parent.info.short}:{config_path} + {', '.join(keys) or 'nothing'}"
            )
            memo[keys] = True if judgement.decision == BAD else False if judgement.decision == GOOD else None
            trials.append(
                {"keys": list(keys), "decision": judgement.decision, "bad": judgement.bad, "seeds": judgement.seeds}
            )
        except CollapseDoctorError as exc:
            memo[keys] = None
            trials.append({"keys": list(keys), "decision": "invalid", "problem": exc.problems[0]})
        return memo[keys]

    smallest = ddmin(changes, fails) if len(changes) > 1 else list(changes)
    used = max((j.seeds for j in judge.memo.values()), default=judge.policy.first)
    confirmation = judge.judge(
        text_of(smallest),
        f"{parent.info.short}:{config_path} + {', '.join(c.key for c in smallest)} (confirmation)",
        seed_start=used,
    )
    return Minimization(smallest, trials, confirmation.decision == BAD, confirmation)
