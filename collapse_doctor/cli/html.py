"""Self-contained HTML reports (inline SVG, no scripts, no server): the answer first, with one picture
that carries it (fg_auc per seed for every variant, commit or regime beside its reference), then
predicted background share and FG accuracy over steps, one small plot per run group, one line per seed
(phase 2 only under a warm start: that is where the verdict is made)."""

from __future__ import annotations

import html

WIDTH, HEIGHT, PAD = 300, 120, 24
SEED_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _polyline(points: list[tuple[float, float]], colour: str, dash: str = "") -> str:
    if not points:
        return ""
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" {dash} points="{coords}"/>'


def runs_of(summaries) -> tuple[list[tuple[int, list[dict]]], list[dict], str]:
    """Each seed's rows and the first seed's events, for plot(). Under a warm start each seed's phase 1 has
    its own length, so every seed is shifted to its own switch: the axis counts phase-2 steps."""
    if not summaries:
        return [], [], "step"
    if not summaries[0].warm_start:
        return [(s.seed, s.series) for s in summaries], [e for e in summaries[0].events if e["step"] > 0], "step"

    def shifted(rows: list[dict], start: int) -> list[dict]:
        return [{**r, "step": r["step"] - start} for r in rows if r["step"] >= start]

    runs = [(s.seed, shifted(s.series, s.warm_start.phase1_steps if s.warm_start else 0)) for s in summaries]
    start = summaries[0].warm_start.phase1_steps
    return runs, [e for e in shifted(summaries[0].events, start) if e["step"] > 0], "phase-2 step"


def plot(series_by_seed: list[tuple[int, list[dict]]], events: list[dict], title: str, axis: str = "step") -> str:
    """One SVG: solid lines predicted BG share, dashed FG accuracy, grey line target BG share."""
    first_step = min((r["step"] for _, s in series_by_seed for r in s), default=0)
    steps = max((r["step"] for _, s in series_by_seed for r in s), default=first_step + 1)
    span = max(steps - first_step, 1)

    def xy(step: float, value: float) -> tuple[float, float]:
        return PAD + (WIDTH - 2 * PAD) * (step - first_step) / span, HEIGHT - PAD - (HEIGHT - 2 * PAD) * value

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img"><title>{html.escape(title)}</title>'
    ]
    parts.append(
        f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" fill="none" stroke="#ccc"/>'
    )
    for e in events:
        x, _ = xy(e["step"], 0)
        parts.append(
            f'<line x1="{x:.1f}" y1="{PAD}" x2="{x:.1f}" y2="{HEIGHT - PAD}" stroke="#aaa" '
            f'stroke-dasharray="2,2"><title>{html.escape(e["event"])}</title></line>'
        )
    for i, (seed, series) in enumerate(series_by_seed):
        colour = SEED_COLOURS[i % len(SEED_COLOURS)]
        if i == 0:
            parts.append(
                _polyline(
                    [xy(r["step"], r["target_bg_share"]) for r in series if r.get("target_bg_share") is not None],
                    "#999",
                )
            )
        parts.append(
            _polyline([xy(r["step"], r["pred_bg_share"]) for r in series if r.get("pred_bg_share") is not None], colour)
        )
        parts.append(
            _polyline(
                [xy(r["step"], r["fg_acc"]) for r in series if r.get("fg_acc") is not None],
                colour,
                'stroke-dasharray="4,2"',
            )
        )
    parts.append(
        f'<text x="{PAD}" y="{HEIGHT - 6}" font-size="9">{axis} {first_step}</text><text x="{WIDTH - PAD - 30}" '
        f'y="{HEIGHT - 6}" font-size="9">{steps}</text>'
    )
    parts.append(
        f'<text x="2" y="{PAD + 4}" font-size="9">1</text><text x="2" y="{HEIGHT - PAD}" font-size="9">0</text></svg>'
    )
    return "".join(parts)


def strip(rows: list[tuple[str, list[float], str]], reference: list[float], reference_name: str) -> str:
    """The summary picture: one row per variant / commit / regime, a dot per seed at its fg_auc, the
    reference's seeds as a shaded band across every row, and each row's mark (its claim or class) at the
    right; marks other than '' and 'good' in red."""
    row_h, left, right = 18, 260, 120
    width = 760
    height = PAD + row_h * (len(rows) + 1) + PAD
    values = [v for _, vs, _ in rows for v in vs] + list(reference)
    top = max(max(values, default=0.0) * 1.1, 0.05)

    def x(value: float) -> float:
        return left + (width - left - right) * value / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    parts.append("<title>fg_auc per seed</title>")
    if reference:
        lo, hi = min(reference), max(reference)
        parts.append(
            f'<rect x="{x(lo):.1f}" y="{PAD}" width="{max(x(hi) - x(lo), 1):.1f}" height="{row_h * len(rows)}" '
            f'fill="#2ca02c" fill-opacity="0.15"><title>{html.escape(reference_name)}: '
            f"{lo:.3f}-{hi:.3f}</title></rect>"
        )
    for i, (name, vs, mark) in enumerate(rows):
        y = PAD + row_h * i + row_h / 2
        parts.append(f'<text x="4" y="{y + 4:.1f}" font-size="11">{html.escape(name[:42])}</text>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#eee"/>')
        colour = "#d62728" if mark not in ("", "good") else "#1f77b4"
        for v in vs:
            parts.append(
                f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"><title>{v:.3f}</title></circle>'
            )
        parts.append(
            f'<text x="{width - right + 6}" y="{y + 4:.1f}" font-size="11" fill="{colour}">{html.escape(mark)}</text>'
        )
    axis = PAD + row_h * len(rows) + 12
    for tick in (0.0, top / 2, top):
        parts.append(f'<text x="{x(tick) - 8:.1f}" y="{axis}" font-size="9">{tick:.2f}</text>')
    parts.append(
        f'<text x="{left}" y="{axis + 14}" font-size="10">fg_auc per seed (mean FG accuracy over the judged steps); '
        f"band: {html.escape(reference_name)}</text></svg>"
    )
    return "".join(parts)


def page(title: str, intro: str, sections: list[tuple[str, str, str]], summary: str = "", answer: str = "") -> str:
    """sections: (heading, text, svg); answer and summary (a picture) open the page."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    if answer:
        body.append(f"<p class='answer'>{html.escape(answer)}</p>")
    if summary:
        body.append(f"<div class='summary'>{summary}</div>")
    body.append(f"<p>{html.escape(intro)}</p>")
    body.append(
        "<p>Solid: predicted background share; dashed: FG accuracy; grey: target background share; dotted verticals: "
        "activations. One colour per seed.</p><div class='grid'>"
    )
    for heading, text, svg in sections:
        body.append(
            f"<figure><figcaption><b>{html.escape(heading)}</b><br>{html.escape(text)}</figcaption>{svg}</figure>"
        )
    body.append("</div>")
    style = (
        "body{font-family:sans-serif;margin:1em}.grid{display:flex;flex-wrap:wrap;gap:1em}"
        "figure{margin:0;width:310px}figcaption{font-size:12px;min-height:3em}"
        ".answer{font-size:1.2em;font-weight:bold}.summary{margin:1em 0}"
    )
    return (
        "<!doctype html><html><head><meta "
        f"charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
