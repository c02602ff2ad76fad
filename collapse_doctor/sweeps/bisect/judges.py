"""Judges of a commit: probes of the bundled model on adaptive seeds (as Chromium's Pinpoint: K
seeds, more while they disagree, a strict majority at the cap), optionally against the good
endpoint's measures; or the user's own command in a temporary shared clone (`git bisect run`'s
exit-code contract)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collapse_doctor.errors import CollapseDoctorError, ExitCode, GitError
from collapse_doctor.judge.measures import PRIMARY, MeasureRule, settled
from collapse_doctor.judge.verdict import is_good
from collapse_doctor.sweeps.bisect.history import CommitConfig
from collapse_doctor.sweeps.executors import Executor
from collapse_doctor.sweeps.jobs import ProbeJob, ProbeSummary
from collapse_doctor.sweeps.runner import run_jobs

GOOD, BAD, SKIP = "good", "bad", "skip"


# --------------------------------------------------------------------------------------------------
# Adaptive seeds
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedPolicy:
    first: int = 3  # seeds of the first round (and of every further round)
    cap: int = 9  # no config gets more seeds than this

    def decide(self, labels: list[str]) -> str | None:
        """good / bad when the seeds agree (or, at the cap, a strict majority); skip when the cap
        leaves it undecided; None while more seeds are needed."""
        n = len(labels)
        good = sum(1 for label in labels if is_good(label) is True)
        bad = sum(1 for label in labels if is_good(label) is False)
        if n < self.first:
            return None
        if bad == n:
            return BAD
        if good == n:
            return GOOD
        if n < self.cap:
            return None
        if 2 * bad > n:
            return BAD
        if 2 * good > n:
            return GOOD
        return SKIP


@dataclass
class Judgement:
    """How one config (or one commit, with --cmd) was judged."""

    decision: str  # good / bad / skip
    summaries: list[ProbeSummary] = field(default_factory=list)
    exit_status: int | None = None  # --cmd: the command's exit status
    output_tail: str = ""  # --cmd: the end of its output

    @property
    def bad(self) -> int:
        return sum(1 for s in self.summaries if s.good is False)

    @property
    def good(self) -> int:
        return sum(1 for s in self.summaries if s.good is True)

    @property
    def seeds(self) -> int:
        return len(self.summaries)

    def counts_text(self) -> str:
        if self.exit_status is not None or not self.summaries:
            return f"exit {self.exit_status}"
        undecided = self.seeds - self.bad - self.good
        return f"{self.bad} of {self.seeds} collapsed" + (f" ({undecided} inconclusive)" if undecided else "")

    def to_json(self) -> dict:
        data: dict[str, Any] = {"decision": self.decision}
        if self.exit_status is not None:
            data.update(exit_status=self.exit_status, output_tail=self.output_tail)
        else:
            data.update(
                bad=self.bad,
                good=self.good,
                seeds=[
                    {
                        "seed": s.seed,
                        "label": s.label,
                        "onset_step": s.onset_step,
                        "final": s.final,
                        "cached": s.cached,
                        "key": s.key,
                        "steps_run": s.steps_run,
                        "steps_saved": s.steps_saved,
                        "worker": s.worker,
                    }
                    for s in self.summaries
                ],
            )
        return data


@dataclass
class ProbeCounter:
    run: int = 0
    cached: int = 0
    seconds: float = 0.0
    steps_saved: int = 0  # by early stopping, over the probes run


class ProbeJudge:
    """Judges a config text on adaptive seeds; equal resolved configs are judged once."""

    def __init__(
        self,
        *,
        overrides: list[str],
        preset: str,
        data: str,
        device: str,
        policy: SeedPolicy,
        jobs: int,
        cache_dir,
        on_probe: Callable[[ProbeSummary], None] | None = None,
        executor: Executor | None = None,
    ):
        self.overrides, self.preset, self.data, self.device = list(overrides), preset, data, device
        self.policy, self.jobs, self.cache_dir, self.on_probe, self.executor = (
            policy,
            jobs,
            cache_dir,
            on_probe,
            executor,
        )
        self.memo: dict[tuple[str, int], Judgement] = {}
        self.counter = ProbeCounter()
        self.base_text: str | None = None  # warm start: phase 1 trains the good endpoint's config
        self.base_source = ""
        self.rule: MeasureRule | None = None  # --by measure: classify against the good endpoint's seeds
        self.reference: list[float | None] | None = None
        self.bad_reference: list[float] = []  # the bad endpoint's measures, once known (the scale's other end)

    def job(self, text: str, source: str, seed: int, tag: str = "") -> ProbeJob:
        return ProbeJob(
            None,
            (*self.overrides, f"probe.seed={seed}"),
            self.preset,
            self.data,
            None,
            self.device,
            tag,
            config_text=text,
            source=source,
            base_text=self.base_text,
            base_source=self.base_source,
        )

    def identity(self, text: str, source: str) -> str:
        """The probe key of seed 0: equal for configs that resolve the same (raises ConfigError)."""
        return self.job(text, source, 0).key()

    def judge(
        self,
        text: str,
        source: str,
        seed_start: int = 0,
        decide: Callable[[list[ProbeSummary]], str | None] | None = None,
    ) -> Judgement:
        """Probe seeds of this config, a round at a time, until `decide` (default: self.decide) answers.
        The seeds already probed for another question are reused: the memo holds probes, not answers."""
        decide = decide or self.decide
        memo_key = (self.identity(text, source), seed_start)
        summaries = list(self.memo[memo_key].summaries) if memo_key in self.memo else []
        while (decision := decide(summaries)) is None:
            start = seed_start + len(summaries)
            round_size = min(self.policy.first, self.policy.cap - len(summaries))
            if self.rule is not None and len(summaries) < self.policy.first:
                # by measure, the first round runs a worker's share at a time: its last seeds are skipped when
                # they cannot change the decision (measures.settled)
                round_size = min(max(self.jobs, 1), self.policy.first - len(summaries))
            if round_size <= 0:
                decision = SKIP
                break
            jobs = [self.job(text, source, seed, source) for seed in range(start, start + round_size)]
            summaries += run_jobs(
                jobs, jobs=self.jobs, cache_dir=self.cache_dir, progress=self.count, executor=self.executor
            )
        self.memo[memo_key] = Judgement(decision, summaries)
        return self.memo[memo_key]

    def decide(self, summaries: list[ProbeSummary]) -> str | None:
        if self.rule is None or self.reference is None:
            return self.policy.decide([s.label for s in summaries])
        return self.by_measure(summaries, lambda values: self.rule.decide(values, self.reference))

    def by_measure(self, summaries: list[ProbeSummary], rule: Callable[[list[float | None]], str | None]) -> str | None:
        """A decision on the seeds' primary measure: none before policy.first seeds, a skip at the cap.
        Verdict labels play no part, so seeds are never added because labels differ."""
        values = [s.measures.get(PRIMARY) for s in summaries]
        if len(summaries) < self.policy.first:
            known = [v for v in [*(self.reference or []), *self.bad_reference] if v is not None]
            return settled(rule, values, self.policy.first, known) if known and summaries else None
        decision = rule(values)
        if decision is None and len(summaries) >= self.policy.cap:
            return SKIP
        return decision

    def count(self, done: int, total: int, summary: ProbeSummary) -> None:
        """run_jobs' progress callback: tallies the probe and tells on_probe."""
        if summary.cached:
            self.counter.cached += 1
        else:
            self.counter.run += 1
            self.counter.seconds += summary.seconds
            self.counter.steps_saved += summary.steps_saved
        if self.on_probe is not None:
            self.on_probe(summary)


def decision_of_exit_status(status: int) -> str | None:
    """git bisect run's contract: 0 good, 125 skip, 1-127 bad, 128 and above (or a signal) abort (None);
    126 (cannot run) and 127 (not found) abort too, as git bisect run does since 2.36: a command that
    does not run says nothing about the commit."""
    if status == 0:
        return GOOD
    if status == 125:
        return SKIP
    if status in (126, 127):
        return None
    if 1 <= status <= 127:
        return BAD
    return None


class CommandAborted(CollapseDoctorError):
    exit_code = ExitCode.BAD


class CommandJudge:
    """Runs the user's command in a temporary shared clone, checked out at each commit.

    `git clone --shared` reads the user's objects through an alternates file and writes nothing into
    their repository; the clone is deleted afterwards, also on Ctrl-C (the `with` block)."""

    def __init__(self, repo, command: str, timeout: float | None = None):
        self.repo, self.command, self.timeout = repo, command, timeout
        self.directory: Path | None = None
        self.memo: dict[str, Judgement] = {}

    def __enter__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="collapse-doctor-bisect-"))
        source = self.repo.common_dir if hasattr(self.repo, "common_dir") else self.repo.git_dir
        self._git(None, "clone", "--quiet", "--shared", "--no-checkout", str(source), str(self.directory / "checkout"))
        return self

    def __exit__(self, *exc):
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        return False

    def _git(self, cwd: Path | None, *args: str) -> None:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise GitError(
                f"git {args[0]} in the temporary checkout failed: "
                f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
            )

    def judge(self, commit: CommitConfig) -> Judgement:
        if commit.info.hexsha in self.memo:
            return self.memo[commit.info.hexsha]
        checkout = self.directory / "checkout"
        self._git(checkout, "checkout", "--quiet", "--force", "--detach", commit.info.hexsha)
        self._git(checkout, "clean", "--quiet", "-ffdx")
        env = {**os.environ, "COLLAPSE_DOCTOR_COMMIT": commit.info.hexsha}
        try:
            done = subprocess.run(
                self.command, shell=True, cwd=checkout, env=env, capture_output=True, text=True, timeout=self.timeout
            )
            status, output = done.returncode, (done.stdout + done.stderr)
        except subprocess.TimeoutExpired:
            status, output = 124, f"timed out after {self.timeout:g} s"
        status = status if status >= 0 else 128 - status  # killed by a signal: 128 + signal, as a shell reports it
        decision = decision_of_exit_status(status)
        if decision is None:
            why = {126: "the command cannot be run", 127: "the command was not found"}.get(
                status, "128 and above abort the bisect (git bisect run semantics)"
            )
            tail = output.strip().splitlines()[-1] if output.strip() else ""
            raise CommandAborted(
                f"--cmd exited {status} at {commit.info.short}: {why}" + (f" ({tail[:200]})" if tail else "")
            )
        self.memo[commit.info.hexsha] = Judgement(decision, exit_status=status, output_tail=output[-2000:])
        return self.memo[commit.info.hexsha]
