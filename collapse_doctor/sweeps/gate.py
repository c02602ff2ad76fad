"""gate: the CI smoke gate. A fixed short probe of the tiny preset on a few seeds, decided by majority,
with the exit codes of `probe`, a one-line summary, JUnit XML and GitHub Actions annotations.

Seeds run in rounds of `jobs` parallel probes; the gate stops as soon as a majority of all its seeds
agree (two of three, usually after the first round on a 2-core runner). Every probe stops early once a
collapse has outlasted probe.early_stop_after, so a collapsing config is judged fastest.

Settings come, lowest first, from the tool defaults, the YAML config (probe:, verdict: sections), the
`[tool.collapse-doctor]` table of the nearest pyproject.toml (`seeds`, `jobs`, and `probe` / `verdict`
sub-tables), and --set / --steps / --seeds on the command line.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from collapse_doctor.config import load_config
from collapse_doctor.config.schedule import Schedule
from collapse_doctor.errors import CollapseDoctorError, ConfigError, ExitCode
from collapse_doctor.experiments.presets import PRESETS, apply_preset
from collapse_doctor.experiments.regimes import LONGEST_RECOVERY, is_warm
from collapse_doctor.judge.measures import PRIMARY, MeasureRule
from collapse_doctor.judge.verdict import INCONCLUSIVE
from collapse_doctor.sweeps.autoregime import SEED_BATCH_NEEDS_REGIME, AutoRegime, choose_regime
from collapse_doctor.sweeps.calibrate import ConfigSource
from collapse_doctor.sweeps.executors import LocalExecutor
from collapse_doctor.sweeps.jobs import ProbeJob, ProbeSummary
from collapse_doctor.sweeps.runner import run_jobs
from collapse_doctor.sweeps.settings import GateSettings
from collapse_doctor.sweeps.tool_table import ToolTable, find_tool_table

PRESET = "tiny"


# --------------------------------------------------------------------------------------------------
# [tool.collapse-doctor] in pyproject.toml
# --------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------------------
@dataclass
class GateResult:
    label: str  # the majority's verdict (the commonest label on the majority side), or INCONCLUSIVE
    good: bool | None
    seeds_planned: int
    summaries: list[ProbeSummary]
    config: str
    overrides: list[str]
    steps: int
    seconds: float
    culprit: dict | None = None  # {"key", "line", "why"} when the onset follows an activation
    tool_table: str | None = None
    comparison: dict | None = None  # --against: the primary measure against the good config
    seed_batch: bool = False  # each config's seeds ran as one vectorised model
    auto_regime: AutoRegime | None = None  # --against with no regime named: the regime calibrated first

    @property
    def exit_code(self) -> int:
        return int(ExitCode.GOOD if self.good else ExitCode.BAD if self.good is False else ExitCode.INCONCLUSIVE)

    @property
    def steps_saved(self) -> int:
        return sum(s.steps_saved for s in self.summaries)

    def one_line(self) -> str:
        if self.auto_regime is not None and self.auto_regime.regime is None:
            return (
                f"collapse-doctor gate: INCONCLUSIVE {self.config} against {self.comparison['against']}: "
                + self.auto_regime.line()
            )
        bad = sum(1 for s in self.summaries if s.good is False)
        seeds = ", ".join(
            f"{s.label}" + (f"@{s.onset_step}" if s.onset_step is not None else "") for s in self.summaries
        )
        text = (
            f"collapse-doctor gate: {self.label} ({bad} bad of {len(self.summaries)} seeds run, "
            f"{self.seeds_planned} planned: {seeds}) {self.config}, {PRESET} preset, {self.steps} steps"
        )
        if self.seed_batch:
            text += ", seeds as one vectorised batch"
        if self.steps_saved:
            text += f", early stop saved {self.steps_saved} steps"
        if self.culprit:
            text += f"; onset after {self.culprit['event']}: {self.culprit['key']}"
        text += f", {self.seconds:.1f} s"
        if self.comparison is not None:
            c = self.comparison
            text += (
                f"; fg_auc against {c['against']}: one-sided exact Mann-Whitney p = {c['p']:.3g}, Cliff's delta "
                f"{c['cliffs_delta']:.2f} -> {c['decision'] or 'undecided'}"
            )
            if c.get("missed"):
                text += f"; {c['missed']['text']}"
        elif self.good is False and self.steps < LONGEST_RECOVERY:
            text += (
                f" (a {self.steps}-step gate cannot tell a late recovery from none: the known-good OLD config "
                f"also collapses here and recovers after 124-{LONGEST_RECOVERY} steps; use --regime from "
                "calibrate to separate)"
            )
        return text

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "good": self.good,
            "exit_code": self.exit_code,
            "comparison": self.comparison,
            "config": self.config,
            "overrides": self.overrides,
            "preset": PRESET,
            "steps": self.steps,
            "seeds_planned": self.seeds_planned,
            "seed_batch": self.seed_batch,
            "seconds": self.seconds,
            "steps_saved": self.steps_saved,
            "culprit": self.culprit,
            "tool_table": self.tool_table,
            "regime": self.auto_regime.to_json() if self.auto_regime else None,
            "seeds": [s.to_json(compact=True) for s in self.summaries],
        }


def majority(labels_good: list[bool | None], planned: int) -> bool | None | str:
    """True / False once more than half of the planned seeds agree; 'undecided' when the rest cannot
    change that; None while seeds remain that could decide it."""
    needed = planned // 2 + 1
    good = sum(1 for g in labels_good if g is True)
    bad = sum(1 for g in labels_good if g is False)
    if good >= needed:
        return True
    if bad >= needed:
        return False
    left = planned - len(labels_good)
    if good + left < needed and bad + left < needed:
        return "undecided"
    return None


def run_gate(
    config_path: str | Path | None = None,
    *,
    settings: GateSettings | None = None,
    tool: ToolTable | None = None,
    progress: Callable[[int, int, ProbeSummary], None] | None = None,
    **fields,
) -> GateResult:
    """The gate: `settings`, or its fields as keywords; [tool.collapse-doctor] fills what they leave open.
    seed_batch: each config's seeds run as one vectorised model (train/seed_batch.py), all at once.
    auto_regime (with `against`): no regime was named, so calibrate the pair first (sweeps/autoregime.py)
    and gate in the cheapest regime where the good config stays learned, if the bad one separates there."""
    s = settings if settings is not None else GateSettings(config_path=config_path, **fields)
    config_path, against, data, cache_dir, seed_batch = s.config_path, s.against, s.data, s.cache_dir, s.seed_batch
    started = time.perf_counter()
    tool = tool if tool is not None else find_tool_table()
    if config_path is None and tool.config is not None:
        config_path = tool.path.parent / tool.config
    user = [*tool.overrides, *s.overrides, *([f"probe.steps={s.steps}"] if s.steps is not None else [])]
    if against is not None:
        user.append("probe.early_stop_after=null")  # measures are compared over the whole budget
    loaded = load_config(config_path, user)
    config, _ = apply_preset(loaded, PRESETS[PRESET])
    planned = s.seeds or tool.seeds or 3
    workers = max(1, min(s.jobs or tool.jobs or (os.cpu_count() or 1), planned))
    path = str(config_path) if config_path is not None else None
    summaries: list[ProbeSummary] = []
    decision: bool | None | str = None
    together = tuple(range(planned)) if seed_batch else None
    base: tuple[str | None, str] = (None, "")  # a warm regime's phase 1 trains the good config
    with LocalExecutor(workers) as runner:  # one pool of workers for every round of the gate
        chosen = None
        if s.auto_regime and against is not None:
            if planned < 4:
                raise CollapseDoctorError(
                    f"--against needs --seeds 4 or more: with {planned} seeds a side the exact rank test cannot reach "
                    "p < 0.05"
                )
            load_config(against, user)  # a bad file fails before anything is calibrated
            if seed_batch:
                raise ConfigError(SEED_BATCH_NEEDS_REGIME)
            chosen = choose_regime(
                ConfigSource(str(against), path=str(against)),
                ConfigSource(path or "<embedded default>", path=path),
                seeds=max(planned, 4),
                overrides=user,
                preset=PRESET,
                data=data,
                jobs=workers,
                cache_dir=cache_dir,
                executor=runner,
                on_probe=progress,
            )
            if chosen.regime is None:
                result = GateResult(INCONCLUSIVE, None, planned, [], loaded.source, user, config.probe.steps, 0.0)
                result.comparison, result.auto_regime = {"against": str(against), "decision": None}, chosen
                result.seconds = time.perf_counter() - started
                return result
            user = [*chosen.regime.overrides, *user]
            config, _ = apply_preset(load_config(config_path, user), PRESETS[PRESET])
            if is_warm(chosen.regime):
                base = (Path(against).read_text(encoding="utf-8"), str(against))
        # With --against, a seed batch runs both configs' batches in one job list: in parallel with --jobs 2.
        # With --against every seed is classified by the measure, not by majority: _against runs them.
        while decision is None and against is None:
            batch = range(len(summaries), planned if seed_batch else min(planned, len(summaries) + workers))
            probe_jobs = [_job(path, user, seed, f"seed {seed}", data, base, together) for seed in batch]
            summaries += run_jobs(probe_jobs, cache_dir=cache_dir, progress=progress, executor=runner)
            decision = majority([s.good for s in summaries], planned)
        good = decision if isinstance(decision, bool) else None
        comparison = None
        if against is not None:
            good, comparison, summaries = _against(
                against, path, user, planned, runner, summaries, cache_dir, data, progress, together, base
            )
    # The label shown: the commonest among the seeds that decided (with --against: among all seeds)
    side = summaries if against is not None else [s for s in summaries if s.good is good] if good is not None else []
    failed = [s for s in summaries if s.good is False]
    culprit = _culprit(failed, config, loaded.source) if good is False else None
    result = GateResult(
        _commonest_label(side),
        good,
        planned,
        summaries,
        loaded.source,
        user,
        config.probe.steps,
        time.perf_counter() - started,
        culprit,
        str(tool.path) if tool.path else None,
    )
    result.comparison = comparison
    result.seed_batch = seed_batch
    result.auto_regime = chosen
    return result


def _commonest_label(summaries: list[ProbeSummary]) -> str:
    labels = sorted({s.label for s in summaries})
    return max(labels, key=lambda name: sum(1 for s in summaries if s.label == name)) if labels else INCONCLUSIVE


def _job(path, user, seed: int, tag: str, data, base: tuple[str | None, str], together) -> ProbeJob:
    """One gate probe: the config at `path` on one seed, tiny preset on the CPU; `base` is a warm
    regime's phase-1 config (text, source), `together` the seed batch it runs in."""
    return ProbeJob(
        path,
        (*user, f"probe.seed={seed}"),
        PRESET,
        data,
        None,
        "cpu",
        tag,
        base_text=base[0],
        base_source=base[1],
        seed_batch=together,
    )


def _against(
    against, path, user, planned, runner, summaries, cache_dir, data, progress, together=None, base=(None, "")
):
    """--against GOOD: every planned seed of both configs, classified by the primary measure (MeasureRule).
    runner: the gate's executor; a candidate round is as many seeds as it has workers."""
    if planned < 4:
        raise CollapseDoctorError(
            f"--against needs --seeds 4 or more: with {planned} seeds a side the exact rank test cannot reach p < 0.05"
        )
    load_config(against, user)  # a bad file fails before probing
    rest = [_job(path, user, seed, f"seed {seed}", data, base, together) for seed in range(len(summaries), planned)]
    reference_jobs = [
        _job(str(against), user, seed, f"against seed {seed}", data, base, together) for seed in range(planned)
    ]
    if together is not None:  # one list, so the two seed batches run side by side
        both = run_jobs([*rest, *reference_jobs], cache_dir=cache_dir, progress=progress, executor=runner)
        summaries, reference = summaries + both[: len(rest)], both[len(rest) :]
    else:
        # The good side first, all of it; then the candidate a round at a time, until the seeds still to come
        # cannot change the decision (MeasureRule.settled, exact).
        reference = run_jobs(reference_jobs, cache_dir=cache_dir, progress=progress, executor=runner)
        values = [s.measures.get(PRIMARY) for s in reference]
        while rest and MeasureRule().settled([s.measures.get(PRIMARY) for s in summaries], values, planned) is None:
            summaries = summaries + run_jobs(
                rest[: runner.jobs], cache_dir=cache_dir, progress=progress, executor=runner
            )
            rest = rest[runner.jobs :]
    rule = MeasureRule()
    c = rule.compare(
        [s.measures.get(rule.measure) for s in summaries], [s.measures.get(rule.measure) for s in reference]
    )
    decision = rule.decision(c)
    comparison = {
        "against": str(against),
        "rule": rule.text(),
        "decision": decision,
        **c.to_json(),
        "reference_labels": [s.label for s in reference],
        "reference_final": [s.final for s in reference],
        "seeds_planned": planned,
        "seeds_run": len(summaries),  # fewer when the seeds left could not change the decision
    }
    if decision == "good":  # what a 'good' at these seed counts could have missed (docs/validity.md section 4)
        comparison["missed"] = {
            "shift_1sd": rule.missed(len(summaries), len(reference), 1.0),
            "shift_2sd": rule.missed(len(summaries), len(reference), 2.0),
            "text": rule.missed_text(len(summaries), len(reference)),
        }
    return (True if decision == "good" else False if decision == "bad" else None), comparison, summaries


def _culprit(bad: list[ProbeSummary], config, source: str) -> dict | None:
    """The staging key of a module whose activation came right before the collapse, on most bad seeds:
    an onset within verdict.window_after steps of an activation points at what switched on there."""
    starts = {f"{m.module} on": m.start_key for m in Schedule.from_config(config).modules}
    starts.update(
        {
            "loo loss on": "training.loo_training.start_epoch",
            "equivariance loss on": "training.equivariance_training.start_epoch",
        }
    )
    votes: dict[str, tuple[str, int]] = {}
    for s in bad:
        if s.onset_step is None:
            continue
        prior = [
            e
            for e in s.events
            if 0 < e["step"] <= s.onset_step and s.onset_step - e["step"] <= config.verdict.window_after
        ]
        if prior:
            event = prior[-1]
            votes[event["event"]] = (starts.get(event["event"], ""), votes.get(event["event"], ("", 0))[1] + 1)
    if not votes:
        return None
    event, (key, count) = max(votes.items(), key=lambda kv: kv[1][1])
    if 2 * count <= len(bad) or not key:
        return None
    line = key_line(Path(source).read_text(encoding="utf-8"), key) if Path(source).is_file() else None
    return {"event": event, "key": key, "line": line, "seeds": count}


def key_line(text: str, dotted: str) -> int | None:
    """The 1-based line of a dotted key in block-style YAML, or of its deepest enclosing section present."""
    parts = dotted.split(".")
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    best: int | None = None
    depth_found = 0
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"^(\s*)([A-Za-z0-9_\-]+)\s*:", line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [name]
        stack.append((indent, name))
        if path == parts[: len(path)] and len(path) > depth_found:
            best, depth_found = number, len(path)
            if len(path) == len(parts):
                return number
    return best


# --------------------------------------------------------------------------------------------------
# CI outputs
# --------------------------------------------------------------------------------------------------
def junit_xml(result: GateResult) -> str:
    """One test case per seed; a bad seed carries a <failure> with its evidence, an INCONCLUSIVE one <skipped>."""
    failures = sum(1 for s in result.summaries if s.good is False)
    skipped = sum(1 for s in result.summaries if s.good is None)
    cases = []
    for s in result.summaries:
        name = quoteattr(f"seed {s.seed}: {s.label}")
        body = ""
        final = s.final
        evidence = (
            f"onset step {s.onset_step}; final FG acc {_pct(final.get('fg_acc'))}, BG acc "
            f"{_pct(final.get('bg_acc'))}, predicted BG {_pct(final.get('pred_bg_share'))} vs target "
            f"{_pct(final.get('target_bg_share'))}; " + "; ".join(s.reasons)
        )
        if s.good is False:
            message = s.label + (f" at step {s.onset_step}" if s.onset_step is not None else "")
            body = f"<failure message={quoteattr(message)} type={quoteattr(s.label)}>{escape(evidence)}</failure>"
        elif s.good is None:
            body = f"<skipped message={quoteattr('INCONCLUSIVE: ' + '; '.join(s.reasons))}/>"
        cases.append(
            f"    <testcase classname={quoteattr('collapse-doctor.gate.' + Path(result.config).name)} name={name} "
            f'time="{s.seconds:.3f}">{body}</testcase>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites><testsuite name="collapse-doctor gate" tests="{len(result.summaries)}" failures="{failures}" '
        f'skipped="{skipped}" errors="0" time="{result.seconds:.3f}">\n'
        + "\n".join(cases)
        + "\n</testsuite></testsuites>\n"
    )


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def github_annotation(result: GateResult, workspace: str | None = None) -> str | None:
    """A workflow command (::error / ::warning) on the config file, at the culprit's line when one is known."""
    if result.good is True:
        return None
    level = "error" if result.good is False else "warning"
    path = result.config
    if workspace and path.startswith(workspace.rstrip("/") + "/"):
        path = path[len(workspace.rstrip("/")) + 1 :]
    where = f"file={path}"
    if result.culprit and result.culprit.get("line"):
        where += f",line={result.culprit['line']}"
    message = result.one_line().replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::{level} {where},title=collapse-doctor gate: {result.label}::{message}"


def step_summary(result: GateResult) -> str:
    lines = [
        f"### collapse-doctor gate: {result.label}",
        "",
        f"`{result.config}`, {PRESET} preset, {result.steps} steps, {result.seconds:.1f} s",
        "",
        "| seed | verdict | onset | final FG acc | predicted BG / target | steps run |",
        "|---|---|---|---|---|---|",
    ]
    for s in result.summaries:
        f = s.final
        lines.append(
            f"| {s.seed} | {s.label} | {'-' if s.onset_step is None else s.onset_step} | {_pct(f.get('fg_acc'))} | "
            f"{_pct(f.get('pred_bg_share'))} / {_pct(f.get('target_bg_share'))} | {s.steps_run} |"
        )
    if result.culprit:
        lines += [
            "",
            f"Onset follows `{result.culprit['event']}`: `{result.culprit['key']}`"
            + (f" (line {result.culprit['line']})" if result.culprit.get("line") else ""),
        ]
    return "\n".join(lines) + "\n"
