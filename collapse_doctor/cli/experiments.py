"""Commands that run one experiment (inspect, probe, noise, grad-check) and how their results read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from collapse_doctor.cli.app import (
    EXIT_CODES_HELP,
    ConfigArg,
    DataOpt,
    JsonOpt,
    PresetOpt,
    ProbeProgress,
    RegimeOpt,
    SeedOpt,
    SetOpt,
    WarmOpt,
    app,
    check_writable,
    emit,
    err,
    note_unused_keys,
    on_interrupt,
    out,
    regime_overrides,
)
from collapse_doctor.cli.format import VERDICT_STYLE, change_text, number_text, pair_text, pct_text, short_error, styled
from collapse_doctor.config import load_config
from collapse_doctor.errors import CollapseDoctorError

if TYPE_CHECKING:  # the inspection module builds models (torch); the command imports it when it runs
    from collapse_doctor.experiments.inspection import InspectReport
    from collapse_doctor.experiments.run_setup import ProbeReport


@app.command("inspect", epilog=EXIT_CODES_HELP)
def inspect_command(
    config: ConfigArg = None,
    overrides: SetOpt = [],
    json_path: JsonOpt = None,
    strict: bool = typer.Option(False, "--strict", help="Refuse keys the tool does not know instead of listing them."),
) -> None:
    """Show what a YAML builds: resolved config, unused and defaulted keys, parameters per module, staging schedule."""
    from collapse_doctor.experiments.inspection import inspect_config

    check_writable(json_path, inputs=(config,))
    loaded = load_config(config, overrides, strict=strict)
    note_unused_keys(loaded)
    report = inspect_config(loaded)
    emit(json_path, report.to_json, lambda: render_inspect(out, report))


@app.command("probe", epilog=EXIT_CODES_HELP)
def probe_command(
    config: ConfigArg = None,
    overrides: SetOpt = [],
    preset: PresetOpt = "tiny",
    seed: SeedOpt = None,
    steps: Optional[int] = typer.Option(
        None, "--steps", min=1, help="Optimizer steps (probe.steps; default: the preset's)."
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto takes a GPU when there is one)."),
    data: DataOpt = "arc-agi-1",
    solutions: Optional[Path] = typer.Option(
        None, "--solutions", help="Kaggle solutions file that goes with a challenges file."
    ),
    out_dir: Optional[Path] = typer.Option(
        None, "--out", help="Directory for the metrics JSONL (default: ~/.cache/collapse-doctor/probes)."
    ),
    json_path: JsonOpt = None,
    strict: bool = typer.Option(False, "--strict", help="Refuse keys the tool does not know instead of listing them."),
    regime: RegimeOpt = None,
    warm_start: WarmOpt = None,
) -> None:
    """Train the bundled RLAN briefly on real ARC tasks and judge the run: HEALTHY, TRANSIENT, COLLAPSED, FG_COLLAPSE, DIVERGED or INCONCLUSIVE."""
    from collapse_doctor.experiments.probe import run_probe
    from collapse_doctor.experiments.run_setup import RunSettings

    check_writable(json_path, inputs=(config,))
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise CollapseDoctorError(f"--out {out_dir}: is a file; --out takes a directory for the metrics JSONL")
    extra = ([f"probe.seed={seed}"] if seed is not None else []) + (
        [f"probe.steps={steps}"] if steps is not None else []
    )
    loaded = load_config(config, [*regime_overrides(regime, warm_start), *overrides, *extra], strict=strict)
    note_unused_keys(loaded)
    on_interrupt(
        "nothing was judged; the metric rows written so far are kept in "
        f"{out_dir or '~/.cache/collapse-doctor/probes'} (collapse-doctor scan FILE judges them); a warm start's "
        "phase 1 resumes from its snapshot on the next run"
    )
    with ProbeProgress() as progress:
        result = run_probe(
            loaded,
            RunSettings(preset, device, data, str(solutions) if solutions else None),
            out_dir=out_dir,
            on_row=progress.on_row,
            on_start=progress.on_start,
        )
    emit(json_path, result.report.to_json, lambda: render_probe(out, result.report, result.rows))
    raise typer.Exit(int(result.verdict.exit_code))


@app.command("noise", epilog=EXIT_CODES_HELP)
def noise_command(
    config: ConfigArg = None,
    overrides: SetOpt = [],
    preset: PresetOpt = "tiny",
    steps: int = typer.Option(
        0, "--steps", min=0, help="Training steps before the second measurement (0: initialisation only)."
    ),
    seed: SeedOpt = None,
    data: DataOpt = "arc-agi-1",
    json_path: JsonOpt = None,
) -> None:
    """Init audit: how much each optional module perturbs the features it modifies, at init and after N steps; the background bias; input dependence."""
    from collapse_doctor.experiments.noise import noise_audit
    from collapse_doctor.experiments.presets import PRESETS
    from collapse_doctor.experiments.run_setup import RunSettings

    if preset not in PRESETS:
        raise CollapseDoctorError(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
    extra = [f"probe.seed={seed}"] if seed is not None else []
    loaded = load_config(config, [*overrides, *extra])
    note_unused_keys(loaded)
    report = noise_audit(loaded, RunSettings(preset=preset, data=data), steps=steps)
    emit(json_path, report.to_json, lambda: render_noise(out, report))


@app.command("grad-check", epilog=EXIT_CODES_HELP)
def grad_check_command(
    config: Optional[Path] = typer.Argument(
        None,
        help="YAML config; default: every module on (the seed's NEW config with all optional modules enabled).",
        show_default=False,
    ),
    overrides: SetOpt = [],
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16 (CPU autocast)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights, the batch and the dropout masks."),
    data: DataOpt = "arc-agi-1",
    json_path: JsonOpt = None,
) -> None:
    """Checkpointed against plain gradients, per module, for use_reentrant False and True, on the seed's cases and the real hazards."""
    from collapse_doctor.experiments.gradcheck import ALL_MODULES_ON, grad_check

    loaded = load_config(config, overrides) if config is not None else load_config(None, [*ALL_MODULES_ON, *overrides])
    note_unused_keys(loaded)
    with err.status("grad-check: forward/backward with and without checkpointing ..."):
        report = grad_check(loaded, dtype=dtype, seed=seed, data=data)
    emit(json_path, report.to_json, lambda: render_grad_check(out, report))
    raise typer.Exit(report.exit_code)


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
def render_inspect(console: Console, report: InspectReport) -> None:
    console.rule(
        styled((report.source, "bold"), f"  (overrides: {', '.join(report.overrides)})" if report.overrides else "")
    )
    console.print(
        yaml.safe_dump(report.resolved, sort_keys=True, default_flow_style=False).rstrip(),
        highlight=False,
        markup=False,
    )

    console.print()
    console.print(
        styled("context path: ", (report.context_path, "bold"), "   context injector: ", (report.injector, "bold"))
    )

    params = Table(title="Parameters per module", show_footer=False)
    params.add_column("module")
    params.add_column("parameters", justify="right")
    for name, count in report.parameters.items():
        if name != "total":
            params.add_row(name, f"{count:,}" if count else Text("not built", style="dim"))
    params.add_row(Text("total", style="bold"), Text(f"{report.parameters['total']:,}", style="bold"))
    console.print(params)

    schedule = Table(title="Staging schedule")
    for column in ("module", "start key", "start epoch", "schedule"):
        schedule.add_column(column)
    for row in report.schedule:
        schedule.add_row(
            row.module, row.start_key, "-" if row.start_epoch is None else str(row.start_epoch), row.description
        )
    console.print(schedule)

    unused = Table(title=f"Keys the tool does not use ({len(report.unused_keys)})")
    unused.add_column("key")
    unused.add_column("why")
    for item in report.unused_keys:
        unused.add_row(item.key, item.reason)
    console.print(unused)
    console.print(
        styled((f"defaulted keys ({len(report.defaulted_keys)}): ", "dim"), ", ".join(report.defaulted_keys) or "none"),
        highlight=False,
    )


def render_probe(console: Console, report: ProbeReport, rows: list[dict]) -> None:
    """The final table of a probe (metrics at a few steps and around each activation) and its verdict."""
    ran, data, verdict = report.ran, report.data, report.verdict
    metric_rows = [r for r in rows if "event" not in r]
    events = [r for r in rows if "event" in r]
    if ran.preset_changes:
        changes = Table(title=f"{ran.preset} preset: what it changed")
        for column in ("key", "config", "probe", "why"):
            changes.add_column(column)
        for c in ran.preset_changes:
            changes.add_row(c["key"], str(c["old"]), str(c["new"]), c["why"])
        console.print(changes)
    marks = sorted(
        {
            0,
            1,
            len(metric_rows) - 1,
            *(min(len(metric_rows) - 1, e["step"] + d) for e in events if e["step"] > 0 for d in (-1, 0, 5)),
            *range(0, len(metric_rows), max(1, len(metric_rows) // 8)),
        }
    )
    table = Table(title="Training-batch metrics (raw weights, before each step's update)")
    for column in ("step", "FG acc", "BG acc", "BG pred/tgt", "FG-cell mode", "loss", "|grad|", "gate sat r/u", "*"):
        table.add_column(column, justify="left" if column in ("FG-cell mode", "*") else "right")
    by_step = {r["step"]: r for r in metric_rows}
    event_steps = {e["step"] for e in events}
    for step in marks:
        r = by_step.get(step)
        if r is None:
            continue
        mode = "-" if r.get("fg_pred_mode") is None else f"{r['fg_pred_mode']} {pct_text(r.get('fg_pred_mode_share'))}"
        loss, grad, sat = r.get("loss"), r.get("grad_norm_total"), r.get("gate_saturation") or {}
        table.add_row(
            str(step),
            pct_text(r.get("fg_acc")),
            pct_text(r.get("bg_acc")),
            pair_text(r.get("pred_bg_share"), r.get("target_bg_share")),
            mode,
            loss if isinstance(loss, str) else f"{loss:.3f}",
            grad if isinstance(grad, str) else f"{grad:.2f}",
            f"{sat.get('reset', 0):.0%}/{sat.get('update', 0):.0%}",
            "*" if step in event_steps else "",
        )
    console.print(table)
    grouped: dict[int, list[str]] = {}
    for e in events:
        grouped.setdefault(e["step"], []).append(e["event"])
    if grouped:
        console.print(
            "* activations: " + "; ".join(f"step {step}: {', '.join(names)}" for step, names in grouped.items()),
            highlight=False,
        )
    label = verdict.label
    style = VERDICT_STYLE.get(label, "bold")
    onset = "" if verdict.onset_step is None else f" at step {verdict.onset_step}"
    after = verdict.onset_after
    if after:
        onset += (
            f" ({after['steps_after']} steps after "
            f"{'the start' if after['event'] == 'start' else after['event'] + ' at step ' + str(after['step'])})"
        )
    console.print(styled((label, f"bold {style}"), onset), highlight=False)
    for reason in verdict.reasons:
        console.print(f"  {reason}", highlight=False)
    if ran.stopped_early:
        console.print(f"  {ran.stopped_early}: saved {ran.steps_saved} of {ran.steps} steps", highlight=False)
        if ran.activations_not_reached:
            console.print(
                f"  not reached before the stop: {', '.join(ran.activations_not_reached)} (--set "
                "probe.early_stop_after=null runs them)",
                highlight=False,
            )
    seen_steps = set()
    for a in verdict.activations:
        if a.step > 0 and a.step not in seen_steps:
            seen_steps.add(a.step)
            console.print(
                f"  {', '.join(grouped[a.step])} at step {a.step}: FG acc {pct_text(a.fg_acc_before)} before -> "
                f"{pct_text(a.fg_acc_after)} after"
                + (f" ({change_text(a.relative_fg_drop)})" if a.relative_fg_drop is not None else ""),
                highlight=False,
            )
    warm = report.warm_start
    if warm is not None:
        line = (
            f"  warm start: phase 1 ({warm.base}) ran {warm.phase1_steps} "
            f"steps{' (from the cache)' if warm.phase1_cached else ''}, "
            f"{'learned' if warm.phase1_learned else 'did not learn'}"
        )
        copy = warm.copy
        if copy:
            line += (
                f"; {copy['share_copied']:.0%} of the candidate's parameters copied, own init kept in: "
                f"{', '.join(copy['kept_init_modules']) or 'nothing'}"
            )
            if copy["untestable_keys"]:
                line += (
                    f"; a warm start cannot test: {', '.join(u['key'] for u in copy['untestable_keys'])} (their "
                    "tensors are copied)"
                )
        console.print(line, highlight=False, soft_wrap=True)
    if report.ema:
        ema = report.ema
        console.print(
            f"  EMA (evaluation only): FG acc raw {pct_text(ema['raw']['fg_acc'])} vs EMA {pct_text(ema['ema']['fg_acc'])}",
            highlight=False,
        )
    for note in report.notes:
        console.print(f"  note: {note}", style="dim", highlight=False)
    console.print(
        f"ran: {ran.config}  preset {ran.preset}  seed {ran.seed}  steps "
        f"{ran.steps_run}/{ran.steps} ({ran.steps_per_epoch} per epoch)  "
        f"{ran.device} {ran.dtype} threads {ran.threads}  overrides {ran.overrides or 'none'}\n"
        f"data: {data.source}, {data.tasks_used}/{data.tasks} tasks fit the "
        f"{data.canvas}x{data.canvas} canvas, background share {data.background_share:.1%}\n"
        f"metrics: {report.metrics}  ({report.timing.seconds:.0f} s)",
        style="dim",
        highlight=False,
    )


def render_noise(console: Console, report) -> None:
    """The init audit: per-module relative perturbation (init, trained), HyperLoRA norms, whole-model facts."""
    table = Table(
        title=f"Relative perturbation ||f(x) - x|| / ||x||  ({report.config}, {report.preset} preset, seed "
        f"{report.seed})"
    )
    for column in ("module", "at init", f"after {report.steps} steps", "reference"):
        table.add_column(column)
    for m in report.modules:
        trained = m.relative_perturbation["trained"]
        table.add_row(
            m.module + (" (gain, isotropic y)" if m.module == "hyper_lora" else ""),
            f"{m.relative_perturbation['init']:.3f}",
            "-" if trained is None else f"{trained:.3f}",
            m.reference,
        )
    console.print(table)
    lora = next((m for m in report.modules if m.module == "hyper_lora"), None)
    if lora is not None:
        norms = Table(title="HyperLoRA ||dW||_F per target")
        norms.add_column("target")
        for stage in lora.delta_fro_norm:
            norms.add_column(stage, justify="right")
        for target in lora.delta_fro_norm["init"]:
            norms.add_row(target, *(f"{lora.delta_fro_norm[s][target]:.2f}" for s in lora.delta_fro_norm))
        console.print(norms)
    b = report.background_bias
    console.print(
        f"output-head background bias: configured {b['configured']:+.2f}; the {b['loss_probability']} bias matching "
        f"the data's {b['data_background_share']:.1%} "
        f"background is {b['matching_bias']:+.2f}. At init background is the argmax on {b['bg_argmax_share']:.1%} of "
        f"valid cells, mean P(BG) {b['mean_p_bg']:.1%}.",
        highlight=False,
    )
    dep = report.input_dependence
    text = f"input dependence (cells whose prediction changes when the grids are blanked): {dep['init']:.1%} at init"
    if dep["trained"] is not None:
        text += f", {dep['trained']:.1%} after {report.steps} steps" + (
            " -- the model ignores its input" if dep["trained"] < 0.01 else ""
        )
    console.print(text, highlight=False)


def render_grad_check(console: Console, report) -> None:
    """Per mode: the per-module table of the as-configured case; then every case and hazard in one line each."""
    tol = report.tolerance
    console.rule(
        styled(
            (f"grad-check {report.config}", "bold"),
            f"  {report.dtype}, seed {report.seed}, D {report.size['hidden_dim']}, canvas {report.size['canvas']}, "
            f"T {report.size['solver_steps']}, batch {report.size['batch']}",
        )
    )
    console.print(
        f"match: relative L2 <= {tol.rel_l2:g} or max |diff| <= {tol.abs_floor:g}, same None/zero/non-zero state; two "
        f"identical reference runs differ by {report.baseline.get('max_abs', 0):g} "
        f"({'bit-identical' if report.baseline.get('bit_identical') else 'not bit-identical'})",
        highlight=False,
    )
    for mode, cases in report.modes.items():
        main = cases["as_configured"]
        trained = " (the mode this config trains with)" if mode == report.trains_with else ""
        if main.error:
            console.print(
                styled((mode, "bold"), f"{trained}: ", ("error", "red"), f" {short_error(main.error)}"),
                highlight=False,
            )
        else:
            table = Table(title=f"{mode}{trained}: checkpointed vs plain gradients, every module live")
            for column in (
                "module",
                "params",
                "plain none/zero/nz",
                "ckpt none/zero/nz",
                "max |diff|",
                "max rel",
                "rel L2",
                "cosine",
                "match",
            ):
                table.add_column(column, justify="left" if column in ("module", "match") else "right")
            for m in main.modules:
                states = lambda c: f"{c['none']}/{c['zero']}/{c['nonzero']}"  # noqa: E731
                table.add_row(
                    m.module,
                    str(m.params),
                    states(m.reference),
                    states(m.checkpointed),
                    number_text(m.max_abs),
                    number_text(m.max_rel),
                    number_text(m.rel_l2),
                    number_text(m.cosine, 6),
                    Text("yes", style="green") if m.match else Text("NO", style="red"),
                )
            console.print(table)
        if main.buffers_changed:
            console.print(
                styled(
                    ("  buffers updated differently under checkpointing:", "red"), f" {', '.join(main.buffers_changed)}"
                ),
                highlight=False,
            )
    cases_table = Table(title="the seed's cases")
    cases_table.add_column("case")
    cases_table.add_column("what it passes")
    for mode in report.modes:
        cases_table.add_column(mode)
    for case in report.cases:
        cells = []
        for mode in report.modes:
            c = report.modes[mode][case.name]
            lora = (
                ""
                if c.hyperlora_grad is None
                else (" HyperLoRA grad: yes" if c.hyperlora_grad else " HyperLoRA grad: no")
            )
            cells.append(
                styled(("error", "red"), ": " + short_error(c.error))
                if c.error
                else (
                    styled(("match", "green"), lora)
                    if c.match
                    else styled(("mismatch", "red"), " " + ", ".join(c.mismatching_modules()) + lora)
                )
            )
        cases_table.add_row(case.name, case.description, *cells)
    console.print(cases_table)
    if report.hazards:
        hazards = Table(title=f"hazards that do corrupt checkpointed gradients ({report.trains_with})")
        for column in ("hazard", "caught", "how", "your loop can hit it", "why"):
            hazards.add_column(column)
        for h in report.hazards:
            if h.result is None:
                how, caught = "not applicable here", "-"
            elif h.result.error:
                how, caught = short_error(h.result.error), Text("yes", style="green")
            else:
                bad = h.result.mismatching_modules()
                worst = max((m.rel_l2 for m in h.result.modules), default=0.0)
                how, caught = (
                    (f"silent: {len(bad)} modules differ, worst rel L2 {worst:.2g}", Text("yes", style="green"))
                    if bad
                    else ("no difference", Text("no", style="red"))
                )
            hazards.add_row(h.name, caught, how, "yes" if h.reachable else "no", h.why)
        console.print(hazards)
    verdict = (
        styled(("gradients match", "green"))
        if report.match
        else styled(
            ("gradients do not match", "red"),
            ": "
            + (
                short_error(report.mode_error(report.trains_with) or "")
                or ", ".join(report.mismatching_modules(report.trains_with))
            ),
        )
    )
    use = "trains with" if report.checkpointing_on else "would train with (checkpointing is off in this config)"
    console.print(styled(f"{report.trains_with}, the mode this config {use}: ", verdict), highlight=False)
