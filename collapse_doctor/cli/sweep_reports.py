"""How the sweeps' results read: ablate's table and HTML page, calibrate's table (the command functions
are in cli/sweeps.py; bisect and gate print calibrate's table when their own calibration finds nothing)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from collapse_doctor.cli.format import VERDICT_CODE, median_of, number_text, pct_text, styled


def render_ablation(console: Console, result) -> None:
    batch = ", each variant's seeds as one vectorised batch" if result.seed_batch else ""
    table = Table(
        title=f"ablate {result.config}: {result.preset} preset, seeds {result.seeds}, {result.steps} steps{batch}"
    )
    for column in (
        "variant",
        "vs",
        "path",
        "verdicts",
        "bad",
        "onsets",
        "final FG",
        "final pred BG",
        "p",
        "fg_auc",
        "rank p",
        "delta",
    ):
        table.add_column(
            column,
            justify="right"
            if column in ("bad", "p", "final FG", "final pred BG", "fg_auc", "rank p", "delta")
            else "left",
        )
    claims = {c.variant: c for c in result.claims}
    for v in result.variants:
        counts = " ".join(f"{VERDICT_CODE[label]}{n}" for label, n in sorted(v.counts().items()))
        onsets = ",".join("-" if s.onset_step is None else str(s.onset_step) for s in v.seeds)
        fg = [s.final.get("fg_acc") for s in v.seeds if s.final.get("fg_acc") is not None]
        bg = [s.final.get("pred_bg_share") for s in v.seeds if s.final.get("pred_bg_share") is not None]
        claim = claims.get(v.name)
        p = (
            ""
            if claim is None
            else (Text(f"{claim.p_value:.3g}", style="bold") if claim.significant else f"{claim.p_value:.3g}")
        )
        auc = median_of([s.measures.get("fg_auc") for s in v.seeds])
        rank_p = "" if claim is None or claim.rank_p is None else f"{claim.rank_p:.3g}"
        delta = "" if claim is None or claim.cliffs_delta is None else f"{claim.cliffs_delta:+.2f}"
        table.add_row(
            v.name,
            v.reference or "",
            "spatial" if v.changes_encoder_path else "",
            counts,
            f"{v.bad}/{len(v.seeds)}",
            onsets,
            pct_text(sum(fg) / len(fg)) if fg else "-",
            pct_text(sum(bg) / len(bg)) if bg else "-",
            p,
            number_text(auc, 3),
            rank_p,
            delta,
        )
    console.print(table)
    console.print(
        "fg_auc: median over seeds of the mean FG accuracy over the run (the primary measure); rank p: two-sided "
        "exact Mann-Whitney of fg_auc against the 'vs' variant; delta: Cliff's delta, positive = lower fg_auc than "
        "the 'vs' variant",
        style="dim",
        highlight=False,
    )
    for note in getattr(result, "notes", []):
        console.print(styled(("note:", "yellow"), f" {note}"), highlight=False)
    console.print(
        "verdicts: "
        + ", ".join(f"{code} {label}" for label, code in VERDICT_CODE.items())
        + "; path: the variant moves the ContextEncoder to its spatial path; p: Fisher's exact test against the 'vs' "
        "variant",
        style="dim",
        highlight=False,
    )
    significant = [c for c in result.claims if c.significant]
    if significant:
        console.print(styled(("claims", "bold"), " (Fisher's exact test, alpha %g):" % result.alpha))
        for c in significant:
            console.print(f"  {c.variant}: {c.text}", highlight=False)
    else:
        console.print(
            f"no culprit named: no variant's bad count differs from its reference's with p < {result.alpha:g}.",
            highlight=False,
        )
    if result.smallest_possible_p >= result.alpha:
        n = len(result.seeds)
        console.print(
            styled(
                ("note:", "yellow"),
                f" with {n} seeds per variant the smallest possible p-value is {result.smallest_possible_p:.3g} (all "
                f"bad vs none), so no claim can reach {result.alpha:g}; use --seeds 5 or more.",
            ),
            highlight=False,
        )
    ran = [s for v in result.variants for s in v.seeds if not s.cached]
    if ran:
        console.print(
            f"{len(ran)} probes run, {sum(s.steps_run for s in ran)} steps; early stopping saved "
            f"{sum(s.steps_saved for s in ran)} steps",
            style="dim",
            highlight=False,
        )
    workers = {
        (s.worker.get("executor"), s.worker.get("hostname"), s.worker.get("worker_id") or s.worker.get("pid"))
        for v in result.variants
        for s in v.seeds
        if s.worker and not s.cached
    }
    if workers:
        executors = sorted({w[0] for w in workers if w[0]})
        console.print(
            f"ran on: {', '.join(executors)}, {len(workers)} worker(s) on {len({w[1] for w in workers})} "
            "host(s); per-seed workers in --json",
            style="dim",
            highlight=False,
        )
    for what, why in result.not_ablated.items():
        console.print(f"not ablated: {what}: {why}", style="dim", highlight=False)


def fg_aucs(summaries) -> list[float]:
    """The primary measure of each seed that has one: the dots of an HTML report's summary picture."""
    return [x for s in summaries if (x := (s.measures or {}).get("fg_auc")) is not None]


def ablation_html(result) -> str:
    from collapse_doctor.cli.html import page, plot, runs_of, strip

    marks: dict[str, str] = {}
    for c in result.claims:
        if c.significant:
            marks[c.variant] = f"claim, p {c.p_value:.3g}"
    sections = []
    for v in result.variants:
        series, events, axis = runs_of(v.seeds)
        text = (
            f"{v.bad}/{len(v.seeds)} bad; "
            + ", ".join(f"{label} {n}" for label, n in sorted(v.counts().items()))
            + (f"; vs {v.reference}" if v.reference else "")
            + ("; phase 2 only" if axis != "step" else "")
        )
        sections.append((v.name, text, plot(series, events, v.name, axis)))
    claims = [f"{c.variant}: {c.text}" for c in result.claims if c.significant]
    base = next((v for v in result.variants if v.name == "base"), None)
    summary = strip(
        [(v.name, fg_aucs(v.seeds), marks.get(v.name, "")) for v in result.variants],
        fg_aucs(base.seeds) if base is not None else [],
        "the minimal base's seeds",
    )
    answer = "; ".join(claims) if claims else "no variant differs from its reference at the chosen alpha"
    intro = f"{result.config}, {result.preset} preset, seeds {result.seeds}, {result.steps} steps."
    if result.auto_regime is not None and result.auto_regime.regime is not None:
        intro += " " + result.auto_regime.line()
    return page("collapse-doctor ablate", intro, sections, summary=summary, answer=answer)


def calibration_html(result) -> str:
    """The chosen regime (or why none), fg_auc per seed of each regime's good and bad side, with the chosen
    regime's good seeds as the band, then each side's curves (phase 2 only under a warm start)."""
    from collapse_doctor.cli.html import page, plot, runs_of, strip
    from collapse_doctor.sweeps.calibrate import counts

    rows, sections = [], []
    for r in result.results:
        name = r.regime.name
        rows.append((f"{name}: good", fg_aucs(r.good), "good" if r.usable else "not usable"))
        if r.bad:
            mark = f"separates, p {r.p:.3g}" if r.separates else "does not separate"
            rows.append((f"{name}: bad", fg_aucs(r.bad), mark))
        for side, summaries in (("good", r.good), ("bad", r.bad)):
            if summaries:
                series, events, axis = runs_of(summaries)
                title = f"{name}, {side} ({result.good if side == 'good' else result.bad})"
                sections.append((title, counts(summaries), plot(series, events, title, axis)))
    if result.confirmation is not None:  # the fresh seeds that confirmed (or did not) the chosen regime
        c = result.confirmation
        fresh = f"{c['seeds'][0]}-{c['seeds'][-1]}"
        rows.append((f"{result.chosen.regime.name}: good, seeds {fresh}", list(c["good_fg_auc"]), "good"))
        mark = f"{'confirmed' if c['confirmed'] else 'NOT confirmed'}, p {c['p']:.3g}"
        rows.append((f"{result.chosen.regime.name}: bad, seeds {fresh}", list(c["bad_fg_auc"]), mark))
    reference = result.chosen or next((r for r in result.results if r.usable), None)
    band = fg_aucs(reference.good) if reference is not None else []
    summary = strip(rows, band, f"{reference.regime.name}'s good seeds" if reference is not None else "no reference")
    if result.chosen is not None:
        r = result.chosen
        answer = f"separates in {r.regime.name} ({r.regime.summary}): p {r.p:.3g}, Cliff's delta {r.delta:.2f}"
        if result.confirmation is not None:
            c = result.confirmation
            answer += f"; {'confirmed' if c['confirmed'] else 'NOT confirmed'} on fresh seeds (p {c['p']:.3g})"
    elif any(r.usable for r in result.results):
        answer = (
            "no regime separates: the good config learns, but the bad one is not worse in the first usable regime, "
            "the only one it is measured in"
        )
    else:
        answer = "no regime is usable: the good config did not learn in any regime tried"
    intro = (
        f"good {result.good} against bad {result.bad}, seeds {result.seeds[0]}-{result.seeds[-1]}"
        + (f", --set {' '.join(result.overrides)}" if result.overrides else "")
        + f"; {len(result.results)} regime(s) measured, cheapest first"
        + (f"; not run (budget): {', '.join(result.not_run)}" if result.not_run else "")
        + "."
    )
    return page("collapse-doctor calibrate", intro, sections, summary=summary, answer=answer)


def render_calibration(console: Console, result) -> None:
    from collapse_doctor.sweeps.calibrate import counts

    title = (
        f"calibrate: good {result.good} vs bad {result.bad}, seeds "
        f"{result.seeds[0]}-{result.seeds[-1]}{', warm start' if result.warm else ''}"
        f"{', each side as one vectorised seed batch' if result.seed_batch else ''}"
    )
    table = Table(title=title)
    for column in (
        "regime",
        "good verdicts",
        "good fg_auc",
        "usable",
        "bad verdicts",
        "bad fg_auc",
        "Fisher p",
        "rank p",
        "delta",
        "s/probe good, bad",
    ):
        table.add_column(
            column, justify="left" if column in ("regime", "good verdicts", "bad verdicts", "usable") else "right"
        )
    for r in result.results:
        good_auc = median_of([s.measures.get("fg_auc") for s in r.good])
        bad_auc = median_of([s.measures.get("fg_auc") for s in r.bad])
        good_s, bad_s = r.seconds_per_probe("good"), r.seconds_per_probe("bad")
        table.add_row(
            r.regime.name,
            counts(r.good),
            number_text(good_auc, 3),
            "yes" if r.usable else f"no (< {result.min_good} good)",
            counts(r.bad) if r.bad else "-",
            number_text(bad_auc, 3) if r.bad else "-",
            number_text(r.fisher_p, 3),
            (Text(f"{r.p:.3g}", style="bold") if r.separates else number_text(r.p, 3)),
            number_text(r.delta, 2),
            ("-" if good_s is None else f"{good_s:.0f}") + ", " + ("-" if bad_s is None else f"{bad_s:.0f}"),
        )
    console.print(table)
    console.print(
        "fg_auc: median over seeds of the mean FG accuracy over the run (primary measure); rank p: one-sided "
        "exact Mann-Whitney (bad lower); "
        "the bad config is measured in the first usable regime only (one test: the false-alarm rate is the rule's); "
        "delta: Cliff's delta, positive = bad is worse; "
        f"separates: rank p < {result.alpha:g} and delta >= {result.min_delta:g}",
        style="dim",
        highlight=False,
    )
    if result.not_run:
        console.print(f"not run (--budget reached): {', '.join(result.not_run)}", highlight=False)
    if result.chosen is None:
        usable = [r.regime.name for r in result.results if r.usable]
        if not usable:
            console.print(
                styled(
                    ("no regime is usable", "bold"),
                    f": the good config did not learn on {result.min_good} of {len(result.seeds)} seeds in any regime "
                    "tried; nothing can be separated.",
                ),
                highlight=False,
            )
        else:
            console.print(
                styled(
                    ("no regime separates", "bold"),
                    f": the good config learns in {usable[0]}, but the bad one is not worse there by this rule. The bad "
                    "side is measured in the first usable regime only, so that the grid is one test (docs/validity.md, "
                    "section 5); to measure it in another, name that one: --regimes NAME.",
                ),
                highlight=False,
            )
        return
    c = result.confirmation
    console.print(
        styled((f"separates in {result.chosen.regime.name}", "bold"), f" ({result.chosen.regime.summary})"),
        highlight=False,
    )
    if c is not None:
        console.print(
            f"confirmation on fresh seeds {c['seeds'][0]}-{c['seeds'][-1]}: good {c['good']}, bad {c['bad']}, p = "
            f"{c['p']:.3g}, delta {c['delta']:.2f}: {'confirmed' if c['confirmed'] else 'NOT confirmed'}",
            highlight=False,
        )


def bisect_html(result) -> str:
    """The answer, fg_auc per seed of every commit judged against the good endpoint's band, then each
    commit's curves (phase 2 only under a warm start)."""
    from collapse_doctor.cli.html import page, plot, runs_of, strip

    rows, sections = [], []
    for index, judgement in sorted(result.judgements.items()):
        first = result.segments[index].first.info
        name = f"{first.short} {first.subject}"
        rows.append((name, fg_aucs(judgement.summaries), result.classes.get(index) or judgement.decision))
        if judgement.summaries:
            series, events, axis = runs_of(judgement.summaries)
            sections.append((name, judgement.counts_text(), plot(series, events, name, axis)))
    good = result.judgements.get(0)
    summary = strip(rows, fg_aucs(good.summaries) if good is not None else [], "the good endpoint's seeds")
    intro = f"{result.repo}, config {result.config_path}; {result.message}."
    if result.auto_regime is not None and result.auto_regime.regime is not None:
        intro += " " + result.auto_regime.line()
    answer = (
        f"first collapsed commit {result.first_bad.info.short} ({result.first_bad.info.subject})"
        if result.first_bad is not None
        else f"{result.outcome}: {result.message}"
    )
    if result.first_degraded is not None:
        answer += f"; degraded before it from {result.first_degraded.info.short} ({result.first_degraded.info.subject})"
    return page(f"collapse-doctor {result.method}", intro, sections, summary=summary, answer=answer)
