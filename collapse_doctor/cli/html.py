"""Self-contained HTML reports (inline SVG, no scripts, no server): predicted background share and FG
accuracy over steps, one small plot per variant with one line per seed."""

from __future__ import annotations

import html

WIDTH, HEIGHT, PAD = 300, 120, 24
SEED_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _polyline(points: list[tuple[float, float]], colour: str, dash: str = "") -> str:
    if not points:
        return ""
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" {dash} points="{coords}"/>'


def plot(series_by_seed: list[tuple[int, list[dict]]], events: list[dict], title: str) -> str:
    """One SVG: solid lines predicted BG share, dashed FG accuracy, grey line target BG share."""
    steps = max((r["step"] for _, s in series_by_seed for r in s), default=1) or 1

    def xy(step: float, value: float) -> tuple[float, float]:
        return PAD + (WIDTH - 2 * PAD) * step / steps, HEIGHT - PAD - (HEIGHT - 2 * PAD) * value

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
        f'<text x="{PAD}" y="{HEIGHT - 6}" font-size="9">step 0</text><text x="{WIDTH - PAD - 30}" y="{HEIGHT - 6}" '
        f'font-size="9">{steps}</text>'
    )
    parts.append(
        f'<text x="2" y="{PAD + 4}" font-size="9">1</text><text x="2" y="{HEIGHT - PAD}" font-size="9">0</text></svg>'
    )
    return "".join(parts)


def page(title: str, intro: str, sections: list[tuple[str, str, str]]) -> str:
    """sections: (heading, text, svg)."""
    body = [f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"]
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
    )
    return (
        "<!doctype html><html><head><meta "
        f"charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
