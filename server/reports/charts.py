"""The SVG bar chart of the report pages: plain SVG styled by CSS classes, no JavaScript, no CDN."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def svg_bar_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]],
                  title: str, unit: str = "h", width: int = 760, height: int = 260) -> Markup:
    """Grouped bars, one group per label, with a y axis in `unit`: plain SVG, styled by CSS
    classes, with a <title> per bar so values read on hover and by screen readers."""
    pad_l, pad_r, pad_t, pad_b = 48, 8, 12, 44
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max([v for _n, vals, _c in series for v in vals] + [0.0])
    step = nice_step(top / 4 if top else 1)
    top = step * max(1, -(-top // step)) if top else step * 4
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    ticks = int(round(top / step))
    for i in range(ticks + 1):
        v = step * i
        y = pad_t + plot_h - plot_h * v / top
        parts.append(f'<line class="grid" x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{fmt_number(v)}</text>")
    n = max(len(labels), 1)
    group_w = plot_w / n
    bar_w = max(group_w * 0.8 / max(len(series), 1), 1.0)
    every = max(1, n // 16)  # at most ~16 x labels
    for i, label in enumerate(labels):
        x0 = pad_l + group_w * i + group_w * 0.1
        for j, (name, vals, cls) in enumerate(series):
            v = vals[i] if i < len(vals) else 0.0
            h = plot_h * v / top if top else 0
            parts.append(f'<rect class="{cls}" x="{x0 + bar_w * j:.1f}" y="{pad_t + plot_h - h:.1f}" '
                         f'width="{bar_w:.1f}" height="{h:.1f}"><title>{escape(label)} — '
                         f"{escape(name)}: {fmt_number(v)} {escape(unit)}</title></rect>")
        if i % every == 0:
            cx = pad_l + group_w * (i + 0.5)
            parts.append(f'<text class="axis" x="{cx:.1f}" y="{height - pad_b + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    lx = pad_l
    for name, _vals, cls in series:
        parts.append(f'<rect class="{cls}" x="{lx}" y="{height - 14}" width="10" height="10"/>'
                     f'<text class="axis" x="{lx + 14}" y="{height - 5}">{escape(name)}</text>')
        lx += 14 + 8 * len(name) + 24
    parts.append("</svg>")
    return Markup("".join(parts))


def nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    mag = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def fmt_number(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}".rstrip("0").rstrip(".") or "0"
