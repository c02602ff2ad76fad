"""Rendering results for people: Rich tables on stdout. JSON output lives with each result's to_json."""

from __future__ import annotations

import yaml
from rich.console import Console
from rich.table import Table

from collapse_doctor.inspection import InspectReport


def render_inspect(console: Console, report: InspectReport) -> None:
    console.rule(f"[bold]{report.source}[/bold]" + (f"  (overrides: {', '.join(report.overrides)})" if report.overrides else ""))
    console.print(yaml.safe_dump(report.resolved, sort_keys=True, default_flow_style=False).rstrip(), highlight=False, markup=False)

    console.print()
    console.print(f"context path: [bold]{report.context_path}[/bold]   context injector: [bold]{report.injector}[/bold]")

    params = Table(title="Parameters per module", show_footer=False)
    params.add_column("module")
    params.add_column("parameters", justify="right")
    for name, count in report.parameters.items():
        if name != "total":
            params.add_row(name, f"{count:,}" if count else "[dim]not built[/dim]")
    params.add_row("[bold]total[/bold]", f"[bold]{report.parameters['total']:,}[/bold]")
    console.print(params)

    schedule = Table(title="Staging schedule")
    for column in ("module", "start key", "start epoch", "schedule"):
        schedule.add_column(column)
    for row in report.schedule:
        schedule.add_row(row.module, row.start_key, "-" if row.start_epoch is None else str(row.start_epoch), row.description)
    console.print(schedule)

    unused = Table(title=f"Keys the tool does not use ({len(report.unused_keys)})")
    unused.add_column("key")
    unused.add_column("why")
    for item in report.unused_keys:
        unused.add_row(item.key, item.reason)
    console.print(unused)
    console.print(f"[dim]defaulted keys ({len(report.defaulted_keys)}):[/dim] " + (", ".join(report.defaulted_keys) or "none"), highlight=False)


VERDICT_STYLE = {"HEALTHY": "green", "TRANSIENT": "yellow", "INCONCLUSIVE": "yellow", "COLLAPSED": "red", "FG_COLLAPSE": "red", "DIVERGED": "red"}


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _pair(a, b) -> str:
    return "-" if a is None or b is None else f"{a:.0%}/{b:.0%}"


def _change(relative_drop: float) -> str:
    return f"{relative_drop:.0%} drop" if relative_drop >= 0 else f"{-relative_drop:.0%} rise"


def render_probe(console: Console, report: dict, rows: list[dict]) -> None:
    """The final table of a probe (metrics at a few steps and around each activation) and its verdict."""
    ran, data = report["ran"], report["data"]
    metric_rows = [r for r in rows if "event" not in r]
    events = [r for r in rows if "event" in r]
    if ran["preset_changes"]:
        changes = Table(title=f"{ran['preset']} preset: what it changed")
        for column in ("key", "config", "probe", "why"):
            changes.add_column(column)
        for c in ran["preset_changes"]:
            changes.add_row(c["key"], str(c["old"]), str(c["new"]), c["why"])
        console.print(changes)
    marks = sorted({0, 1, len(metric_rows) - 1, *(min(len(metric_rows) - 1, e["step"] + d) for e in events if e["step"] > 0 for d in (-1, 0, 5)), *range(0, len(metric_rows), max(1, len(metric_rows) // 8))})
    table = Table(title="Training-batch metrics (raw weights, before each step's update)")
    for column in ("step", "FG acc", "BG acc", "BG pred/tgt", "FG-cell mode", "loss", "|grad|", "gate sat r/u", "*"):
        table.add_column(column, justify="left" if column in ("FG-cell mode", "*") else "right")
    by_step = {r["step"]: r for r in metric_rows}
    event_steps = {e["step"] for e in events}
    for step in marks:
        r = by_step.get(step)
        if r is None:
            continue
        mode = "-" if r.get("fg_pred_mode") is None else f"{r['fg_pred_mode']} {_pct(r.get('fg_pred_mode_share'))}"
        loss, grad, sat = r.get("loss"), r.get("grad_norm_total"), r.get("gate_saturation") or {}
        table.add_row(
            str(step), _pct(r.get("fg_acc")), _pct(r.get("bg_acc")), _pair(r.get("pred_bg_share"), r.get("target_bg_share")), mode,
            loss if isinstance(loss, str) else f"{loss:.3f}", grad if isinstance(grad, str) else f"{grad:.2f}",
            f"{sat.get('reset', 0):.0%}/{sat.get('update', 0):.0%}", "*" if step in event_steps else "",
        )
    console.print(table)
    grouped: dict[int, list[str]] = {}
    for e in events:
        grouped.setdefault(e["step"], []).append(e["event"])
    if grouped:
        console.print("* activations: " + "; ".join(f"step {step}: {', '.join(names)}" for step, names in grouped.items()), highlight=False)
    evidence = report["evidence"]
    label = report["verdict"]
    style = VERDICT_STYLE.get(label, "bold")
    onset = "" if report["onset_step"] is None else f" at step {report['onset_step']}"
    after = evidence.get("onset_after")
    if after:
        onset += f" ({after['steps_after']} steps after {'the start' if after['event'] == 'start' else after['event'] + ' at step ' + str(after['step'])})"
    console.print(f"[bold {style}]{label}[/bold {style}]{onset}", highlight=False)
    for reason in report["reasons"]:
        console.print(f"  {reason}", highlight=False)
    if ran.get("stopped_early"):
        console.print(f"  {ran['stopped_early']}: saved {ran.get('steps_saved', 0)} of {ran['steps']} steps", highlight=False)
        if ran.get("activations_not_reached"):
            console.print(f"  not reached before the stop: {', '.join(ran['activations_not_reached'])} (--set probe.early_stop_after=null runs them)", highlight=False)
    seen_steps = set()
    for a in evidence.get("activations", []):
        if a["step"] > 0 and a["step"] not in seen_steps:
            seen_steps.add(a["step"])
            a = {**a, "event": ", ".join(grouped[a["step"]])}
            console.print(f"  {a['event']} at step {a['step']}: FG acc {_pct(a['fg_acc_before'])} before -> {_pct(a['fg_acc_after'])} after" + (f" ({_change(a['relative_fg_drop'])})" if a["relative_fg_drop"] is not None else ""), highlight=False)
    warm = report.get("warm_start")
    if warm:
        line = f"  warm start: phase 1 ({warm['base']}) ran {warm['phase1_steps']} steps{' (from the cache)' if warm.get('phase1_cached') else ''}, {'learned' if warm['phase1_learned'] else 'did not learn'}"
        copy = warm.get("copy")
        if copy:
            line += f"; {copy['share_copied']:.0%} of the candidate's parameters copied, own init kept in: {', '.join(copy['kept_init_modules']) or 'nothing'}"
            if copy["untestable_keys"]:
                line += f"; a warm start cannot test: {', '.join(u['key'] for u in copy['untestable_keys'])} (their tensors are copied)"
        console.print(line, highlight=False, soft_wrap=True)
    if report.get("ema"):
        ema = report["ema"]
        console.print(f"  EMA (evaluation only): FG acc raw {_pct(ema['raw']['fg_acc'])} vs EMA {_pct(ema['ema']['fg_acc'])}", highlight=False)
    for note in report["notes"]:
        console.print(f"  [dim]note: {note}[/dim]", highlight=False)
    console.print(
        f"[dim]ran: {ran['config']}  preset {ran['preset']}  seed {ran['seed']}  steps {ran['steps_run']}/{ran['steps']} ({ran['steps_per_epoch']} per epoch)  "
        f"{ran['device']} {ran['dtype']} threads {ran['threads']}  overrides {ran['overrides'] or 'none'}\n"
        f"data: {data['source']}, {data['tasks_used']}/{data['tasks']} tasks fit the {data['canvas']}x{data['canvas']} canvas, background share {data['background_share']:.1%}\n"
        f"metrics: {report['metrics']}  ({report['timing']['seconds']:.0f} s)[/dim]",
        highlight=False,
    )


def render_noise(console: Console, report) -> None:
    """The init audit: per-module relative perturbation (init, trained), HyperLoRA norms, whole-model facts."""
    table = Table(title=f"Relative perturbation ||f(x) - x|| / ||x||  ({report.config}, {report.preset} preset, seed {report.seed})")
    for column in ("module", "at init", f"after {report.steps} steps", "reference"):
        table.add_column(column)
    for m in report.modules:
        trained = m.relative_perturbation["trained"]
        table.add_row(m.module + (" (gain, isotropic y)" if m.module == "hyper_lora" else ""), f"{m.relative_perturbation['init']:.3f}", "-" if trained is None else f"{trained:.3f}", m.reference)
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
        f"output-head background bias: configured {b['configured']:+.2f}; the {b['loss_probability']} bias matching the data's {b['data_background_share']:.1%} "
        f"background is {b['matching_bias']:+.2f}. At init background is the argmax on {b['bg_argmax_share']:.1%} of valid cells, mean P(BG) {b['mean_p_bg']:.1%}.",
        highlight=False,
    )
    dep = report.input_dependence
    text = f"input dependence (cells whose prediction changes when the grids are blanked): {dep['init']:.1%} at init"
    if dep["trained"] is not None:
        text += f", {dep['trained']:.1%} after {report.steps} steps" + (" -- the model ignores its input" if dep["trained"] < 0.01 else "")
    console.print(text, highlight=False)


VERDICT_CODE = {"HEALTHY": "H", "TRANSIENT": "T", "COLLAPSED": "C", "FG_COLLAPSE": "F", "DIVERGED": "D", "INCONCLUSIVE": "I"}


def render_ablation(console: Console, result) -> None:
    table = Table(title=f"ablate {result.config}: {result.preset} preset, seeds {result.seeds}, {result.steps} steps")
    for column in ("variant", "vs", "path", "verdicts", "bad", "onsets", "final FG", "final pred BG", "p", "fg_auc", "rank p", "delta"):
        table.add_column(column, justify="right" if column in ("bad", "p", "final FG", "final pred BG", "fg_auc", "rank p", "delta") else "left")
    claims = {c.variant: c for c in result.claims}
    for v in result.variants:
        counts = " ".join(f"{VERDICT_CODE[label]}{n}" for label, n in sorted(v.counts().items()))
        onsets = ",".join("-" if s.onset_step is None else str(s.onset_step) for s in v.seeds)
        fg = [s.final.get("fg_acc") for s in v.seeds if s.final.get("fg_acc") is not None]
        bg = [s.final.get("pred_bg_share") for s in v.seeds if s.final.get("pred_bg_share") is not None]
        claim = claims.get(v.name)
        p = "" if claim is None else (f"[bold]{claim.p_value:.3g}[/bold]" if claim.significant else f"{claim.p_value:.3g}")
        auc = _median([s.measures.get("fg_auc") for s in v.seeds])
        rank_p = "" if claim is None or claim.rank_p is None else f"{claim.rank_p:.3g}"
        delta = "" if claim is None or claim.cliffs_delta is None else f"{claim.cliffs_delta:+.2f}"
        table.add_row(v.name, v.reference or "", "spatial" if v.changes_encoder_path else "", counts, f"{v.bad}/{len(v.seeds)}", onsets, _pct(sum(fg) / len(fg)) if fg else "-", _pct(sum(bg) / len(bg)) if bg else "-", p, _num(auc, 3), rank_p, delta)
    console.print(table)
    console.print("[dim]fg_auc: median over seeds of the mean FG accuracy over the run (the primary measure); rank p: two-sided exact Mann-Whitney of fg_auc against the 'vs' variant; delta: Cliff's delta, positive = lower fg_auc than the 'vs' variant[/dim]", highlight=False)
    for note in getattr(result, "notes", []):
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    console.print("[dim]verdicts: " + ", ".join(f"{code} {label}" for label, code in VERDICT_CODE.items()) + "; path: the variant moves the ContextEncoder to its spatial path; p: Fisher's exact test against the 'vs' variant[/dim]", highlight=False)
    significant = [c for c in result.claims if c.significant]
    if significant:
        console.print("[bold]claims[/bold] (Fisher's exact test, alpha %g):" % result.alpha)
        for c in significant:
            console.print(f"  {c.variant}: {c.text}", highlight=False)
    else:
        console.print(f"no culprit named: no variant's bad count differs from its reference's with p < {result.alpha:g}.", highlight=False)
    if result.smallest_possible_p >= result.alpha:
        n = len(result.seeds)
        console.print(f"[yellow]note:[/yellow] with {n} seeds per variant the smallest possible p-value is {result.smallest_possible_p:.3g} (all bad vs none), so no claim can reach {result.alpha:g}; use --seeds 5 or more.", highlight=False)
    ran = [s for v in result.variants for s in v.seeds if not s.cached]
    if ran:
        console.print(f"[dim]{len(ran)} probes run, {sum(s.steps_run for s in ran)} steps; early stopping saved {sum(s.steps_saved for s in ran)} steps[/dim]", highlight=False)
    workers = {(s.worker.get("executor"), s.worker.get("hostname"), s.worker.get("worker_id") or s.worker.get("pid")) for v in result.variants for s in v.seeds if s.worker and not s.cached}
    if workers:
        executors = sorted({w[0] for w in workers if w[0]})
        console.print(f"[dim]ran on: {', '.join(executors)}, {len(workers)} worker(s) on {len({w[1] for w in workers})} host(s); per-seed workers in --json[/dim]", highlight=False)
    for what, why in result.not_ablated.items():
        console.print(f"[dim]not ablated: {what}: {why}[/dim]", highlight=False)


def ablation_html(result) -> str:
    from collapse_doctor.html import page, plot

    sections = []
    for v in result.variants:
        series = [(s.seed, s.series) for s in v.seeds]
        events = [e for e in (v.seeds[0].events if v.seeds else []) if e["step"] > 0]
        text = f"{v.bad}/{len(v.seeds)} bad; " + ", ".join(f"{label} {n}" for label, n in sorted(v.counts().items())) + (f"; vs {v.reference}" if v.reference else "")
        sections.append((v.name, text, plot(series, events, v.name)))
    intro = f"{result.config}, {result.preset} preset, seeds {result.seeds}, {result.steps} steps. " + "; ".join(c.text for c in result.claims if c.significant)
    return page("collapse-doctor ablate", intro, sections)


def render_diff(console: Console, label_a: str, label_b: str, changes) -> None:
    table = Table(title=f"config keys: {label_a} -> {label_b}")
    for column in ("section", "key", label_a, label_b, "kind"):
        table.add_column(column)
    section = None
    for c in changes:
        table.add_row(c.section if c.section != section else "", c.key + ("" if c.known else " [dim](unknown)[/dim]"), str(c.old), str(c.new), c.kind)
        section = c.section
    console.print(table if changes else f"no key differs between {label_a} and {label_b}")


DECISION_STYLE = {"good": "green", "bad": "red", "skip": "yellow"}


def render_bisect(console: Console, result) -> None:
    """The commits judged, the answer (or why there is none), and what it cost."""
    ran = result.ran
    judged_by = f"--cmd {ran.get('command')!r}" if result.judge == "cmd" else f"{ran.get('preset')} preset, {ran.get('seeds')} seeds (up to {ran.get('max_seeds')})" + (f", overrides {' '.join(ran['overrides'])}" if ran.get("overrides") else "")
    if result.good and result.bad:
        console.rule(f"[bold]{result.method} {result.good.short}..{result.bad.short}[/bold]  {len(result.commits)} commits, config {result.config_path or '-'}")
        console.print(f"judged by: {judged_by}", highlight=False)
        if ran.get("by") == "measure":
            console.print(f"classified by: {ran.get('rule')}", highlight=False, soft_wrap=True)
    if result.judgements:
        table = Table(title="commits judged (a judgement covers every commit with the same resolved config)")
        for column in ("commit", "date", "subject", "commits covered", "evidence", "decision"):
            table.add_column(column)
        for index, judgement in sorted(result.judgements.items()):
            segment = result.segments[index]
            first = segment.first.info
            style = DECISION_STYLE.get(judgement.decision, "")
            table.add_row(first.short, first.date[:10], first.subject[:48], str(len(segment.commits)), judgement.counts_text(), f"[{style}]{judgement.decision}[/{style}]")
        console.print(table)
    skipped = result.untestable()
    if skipped:
        console.print(f"[yellow]untestable commits ({len(skipped)}), skipped:[/yellow] " + "; ".join(f"{c.info.short} ({c.problem})" for c in skipped), highlight=False, soft_wrap=True)
    for t in result.transitions:
        console.print(f"[bold]{t.direction}[/bold] at {t.after.info.short} {t.after.info.subject} (after {t.before.info.short})", highlight=False)
        if t.changes:
            render_diff(console, t.before.info.short, t.after.info.short, t.changes)
    if result.outcome == "found":
        c, p = result.first_bad.info, result.parent.info
        console.print(f"[bold red]first bad commit[/bold red] {c.hexsha}\n  {c.date}  {c.author}\n  {c.subject}\n  parent {p.short} ({p.subject})", highlight=False)
        unreadable = [(x.info.short, why) for x in (result.parent, result.first_bad) if (why := _config_problem(x))]
        if not result.changes and unreadable:
            console.print("the config change cannot be shown: " + "; ".join(f"{short}'s config could not be read ({why})" for short, why in unreadable), highlight=False, soft_wrap=True)
        else:
            render_diff(console, p.short, c.short, result.changes)
        if result.files_changed:
            console.print(f"files it changed: {', '.join(result.files_changed)}", highlight=False)
    else:
        style = "green" if result.outcome == "scanned" else "yellow" if result.exit_code in (2, 3) else "red"
        console.print(f"[bold {style}]{result.outcome}[/bold {style}]: {result.message}", highlight=False)
    if result.evidence and "text" in result.evidence:
        console.print(f"evidence: {result.evidence['text']}", highlight=False)
        seeds = result.evidence.get("good_side", {}).get("seeds", []) + result.evidence.get("bad_side", {}).get("seeds", [])
        if seeds and result.outcome == "found" and result.evidence["p_value"] >= 0.05:
            console.print(f"[yellow]note:[/yellow] p = {result.evidence['p_value']:.3g}: this many seeds cannot rule out chance at 0.05; --seeds 5 or more can.", highlight=False)
    if result.minimization is not None:
        m = result.minimization
        keys = ", ".join(f"{c.key}: {c.old} -> {c.new}" for c in m.changes)
        console.print(f"[bold]smallest collapsing change[/bold] (ddmin, {len(m.trials)} trials): {keys}", highlight=False)
        if m.confirmation is not None:
            console.print(f"  confirmation on fresh seeds: {m.confirmation.counts_text()} -> {'confirmed' if m.confirmed else '[yellow]not confirmed[/yellow]'}", highlight=False)
    probes = result.probes
    if result.judge == "probe":
        saved = f", early stopping saved {probes.steps_saved} steps" if probes.steps_saved else ""
        console.print(f"[dim]cost: {probes.run} probes run ({probes.seconds:.0f} s of probe time{saved}), {probes.cached} from the cache; {result.rounds} commits judged after the endpoints[/dim]", highlight=False)
    console.print(f"[dim]{result.limitations}[/dim]", highlight=False)


def _num(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "n/a"
    return f"{value:.{digits}e}" if value and (abs(value) < 1e-2 or abs(value) >= 1e3) else f"{value:.{digits}f}"


def _short_error(text: str) -> str:
    """torch's messages run long: the first clause names the failure."""
    cut = min((i for i in (text.find(" ("), text.find(". ")) if i > 0), default=len(text))
    return text[:cut]


def render_grad_check(console: Console, report) -> None:
    """Per mode: the per-module table of the as-configured case; then every case and hazard in one line each."""
    tol = report.tolerance
    console.rule(f"[bold]grad-check {report.config}[/bold]  {report.dtype}, seed {report.seed}, D {report.size['hidden_dim']}, canvas {report.size['canvas']}, T {report.size['solver_steps']}, batch {report.size['batch']}")
    console.print(f"match: relative L2 <= {tol.rel_l2:g} or max |diff| <= {tol.abs_floor:g}, same None/zero/non-zero state; two identical reference runs differ by {report.baseline.get('max_abs', 0):g} ({'bit-identical' if report.baseline.get('bit_identical') else 'not bit-identical'})", highlight=False)
    for mode, cases in report.modes.items():
        main = cases["as_configured"]
        trained = " (the mode this config trains with)" if mode == report.trains_with else ""
        if main.error:
            console.print(f"[bold]{mode}[/bold]{trained}: [red]error[/red] {_short_error(main.error)}", highlight=False)
        else:
            table = Table(title=f"{mode}{trained}: checkpointed vs plain gradients, every module live")
            for column in ("module", "params", "plain none/zero/nz", "ckpt none/zero/nz", "max |diff|", "max rel", "rel L2", "cosine", "match"):
                table.add_column(column, justify="left" if column in ("module", "match") else "right")
            for m in main.modules:
                states = lambda c: f"{c['none']}/{c['zero']}/{c['nonzero']}"  # noqa: E731
                table.add_row(m.module, str(m.params), states(m.reference), states(m.checkpointed), _num(m.max_abs), _num(m.max_rel), _num(m.rel_l2), _num(m.cosine, 6), "[green]yes[/green]" if m.match else "[red]NO[/red]")
            console.print(table)
        if main.buffers_changed:
            console.print(f"  [red]buffers updated differently under checkpointing:[/red] {', '.join(main.buffers_changed)}", highlight=False)
    cases_table = Table(title="the seed's cases")
    cases_table.add_column("case")
    cases_table.add_column("what it passes")
    for mode in report.modes:
        cases_table.add_column(mode)
    for case in report.cases:
        cells = []
        for mode in report.modes:
            c = report.modes[mode][case.name]
            lora = "" if c.hyperlora_grad is None else (" HyperLoRA grad: yes" if c.hyperlora_grad else " HyperLoRA grad: no")
            cells.append("[red]error[/red]: " + _short_error(c.error) if c.error else ("[green]match[/green]" if c.match else "[red]mismatch[/red] " + ", ".join(c.mismatching_modules())) + lora)
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
                how, caught = _short_error(h.result.error), "[green]yes[/green]"
            else:
                bad = h.result.mismatching_modules()
                worst = max((m.rel_l2 for m in h.result.modules), default=0.0)
                how, caught = (f"silent: {len(bad)} modules differ, worst rel L2 {worst:.2g}", "[green]yes[/green]") if bad else ("no difference", "[red]no[/red]")
            hazards.add_row(h.name, caught, how, "yes" if h.reachable else "no", h.why)
        console.print(hazards)
    verdict = "[green]gradients match[/green]" if report.match else "[red]gradients do not match[/red]: " + (_short_error(report.mode_error(report.trains_with) or "") or ", ".join(report.mismatching_modules(report.trains_with)))
    use = "trains with" if report.checkpointing_on else "would train with (checkpointing is off in this config)"
    console.print(f"{report.trains_with}, the mode this config {use}: {verdict}", highlight=False)


def render_scan(console: Console, result) -> None:
    v = result.verdict
    style = VERDICT_STYLE.get(v.label, "bold")
    onset = "" if v.onset_step is None else f" at step {v.onset_step}"
    if v.onset_after and v.onset_step is not None:
        after = v.onset_after
        onset += f" ({after['steps_after']} steps after {'the start' if after['event'] == 'start' else after['event'] + ' at step ' + str(after['step'])})"
    console.print(f"[bold {style}]{v.label}[/bold {style}]{onset}  [dim]{result.source}: {v.steps} steps, {result.events} events[/dim]", highlight=False)
    for reason in v.reasons:
        console.print(f"  {reason}", highlight=False)
    mapped = ", ".join(f"{name} <- {column}" if name != column else name for name, column in result.mapping.items())
    console.print(f"  signals used: {', '.join(v.signals_used) or 'none'}  (columns read: {mapped})", highlight=False)
    for limitation in v.limitations:
        console.print(f"  [yellow]limited:[/yellow] {limitation}", highlight=False)
    for note in result.notes:
        console.print(f"  [dim]note: {note}[/dim]", highlight=False)


def scan_html(result) -> str:
    from collapse_doctor.html import page, plot

    metric_rows = [r for r in result.rows if "event" not in r]
    events = [r for r in result.rows if "event" in r]
    v = result.verdict
    text = f"{v.label}" + (f" from step {v.onset_step}" if v.onset_step is not None else "") + "; " + "; ".join(v.reasons)
    return page("collapse-doctor scan", f"{result.source}: signals used {', '.join(v.signals_used)}", [(v.label, text, plot([(0, metric_rows)], events, result.source))])


def _median(values: list) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def render_calibration(console: Console, result) -> None:
    from collapse_doctor.calibrate import counts

    title = f"calibrate: good {result.good} vs bad {result.bad}, seeds {result.seeds[0]}-{result.seeds[-1]}{', warm start' if result.warm else ''}"
    table = Table(title=title)
    for column in ("regime", "good verdicts", "good fg_auc", "usable", "bad verdicts", "bad fg_auc", "Fisher p", "rank p", "Holm p", "delta", "s/probe good, bad"):
        table.add_column(column, justify="left" if column in ("regime", "good verdicts", "bad verdicts", "usable") else "right")
    for r in result.results:
        good_auc = _median([s.measures.get("fg_auc") for s in r.good])
        bad_auc = _median([s.measures.get("fg_auc") for s in r.bad])
        good_s, bad_s = r.seconds_per_probe("good"), r.seconds_per_probe("bad")
        table.add_row(
            r.regime.name,
            counts(r.good),
            _num(good_auc, 3),
            "yes" if r.usable else f"no (< {result.min_good} good)",
            counts(r.bad) if r.bad else "-",
            _num(bad_auc, 3) if r.bad else "-",
            _num(r.fisher_p, 3),
            _num(r.p, 3),
            (f"[bold]{r.p_holm:.3g}[/bold]" if r.separates else _num(r.p_holm, 3)),
            _num(r.delta, 2),
            ("-" if good_s is None else f"{good_s:.0f}") + ", " + ("-" if bad_s is None else f"{bad_s:.0f}"),
        )
    console.print(table)
    console.print(
        f"[dim]fg_auc: median over seeds of the mean FG accuracy over the run (primary measure); rank p: one-sided exact Mann-Whitney (bad lower); "
        f"Holm over the regimes the bad config was measured in; delta: Cliff's delta, positive = bad is worse; separates: Holm p < {result.alpha:g} and delta >= {result.min_delta:g}[/dim]",
        highlight=False,
    )
    if result.not_run:
        console.print(f"not run (--budget reached): {', '.join(result.not_run)}", highlight=False)
    if result.chosen is None:
        usable = [r.regime.name for r in result.results if r.usable]
        if not usable:
            console.print(f"[bold]no regime is usable[/bold]: the good config did not learn on {result.min_good} of {len(result.seeds)} seeds in any regime tried; nothing can be separated.", highlight=False)
        else:
            console.print(f"[bold]no regime separates[/bold]: the good config learns in {', '.join(usable)}, but the bad one is not worse there by this rule.", highlight=False)
        return
    c = result.confirmation
    console.print(f"[bold]separates in {result.chosen.regime.name}[/bold] ({result.chosen.regime.summary})", highlight=False)
    if c is not None:
        console.print(f"confirmation on fresh seeds {c['seeds'][0]}-{c['seeds'][-1]}: good {c['good']}, bad {c['bad']}, p = {c['p']:.3g}, delta {c['delta']:.2f}: {'confirmed' if c['confirmed'] else 'NOT confirmed'}", highlight=False)


def _config_problem(commit) -> str | None:
    """Why a commit's config cannot be diffed (missing, malformed), or None when it can."""
    from collapse_doctor.config_diff import parse_raw
    from collapse_doctor.errors import CollapseDoctorError

    if commit.text is None:
        return commit.problem or "no config file"
    try:
        parse_raw(commit.text, commit.info.short)
    except CollapseDoctorError as exc:
        return exc.problems[0]
    return None
