"""Small inline SVG charts: crisp on a phone, a few kilobytes, no JavaScript and no library."""
from __future__ import annotations

from html import escape

PALETTE = ("#2563eb", "#f97316", "#16a34a", "#db2777", "#7c3aed", "#0891b2")


def line_chart(title: str, xs: list[float], series: dict[str, list[float]], y_range: tuple[float, float] | None = None,
               marks: list[tuple[float, str]] = (), points: list[tuple[float, float, str]] = (),
               width: int = 560, height: int = 240, x_ticks: list[float] | None = None,
               x_range: tuple[float, float] | None = None) -> str:
    """Lines of ``series`` over ``xs``; ``marks`` are dashed vertical lines (x, label) and
    ``points`` labelled dots (x, y, label). The x axis is labelled at ``x_ticks`` (default: the
    whole numbers among ``xs``, such as epochs) over ``x_range`` (default: the span of ``xs``)."""
    left, right, top, bottom = 44, 12, 28, 30
    values = [v for vs in series.values() for v in vs if v is not None]
    lo, hi = y_range or (min(values, default=0.0), max(values, default=1.0))
    if hi - lo < 1e-9:
        hi = lo + 1.0
    x0, x1 = x_range or ((min(xs), max(xs)) if xs else (0, 1))
    span = (x1 - x0) or 1

    def px(x: float) -> float:
        return left + (x - x0) / span * (width - left - right)

    def py(y: float) -> float:
        return top + (1 - (y - lo) / (hi - lo)) * (height - top - bottom)

    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" class="chart">',
             f'<text x="{left}" y="16" class="ct">{escape(title)}</text>']
    for i in range(5):
        y = lo + (hi - lo) * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{py(y) + 4:.1f}" class="ax" text-anchor="end">{y:.2f}</text>')
    ticks = x_ticks if x_ticks is not None else [x for x in sorted(set(int(v) for v in xs))
                                                 if len(xs) <= 20 or x % max(1, len(xs) // 10) == 0]
    for x in ticks:
        parts.append(f'<text x="{px(x):.1f}" y="{height - 10}" class="ax" text-anchor="middle">{escape(f"{x:g}")}</text>')
    for x, label in marks:
        parts.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{height - bottom}" class="mark"/>'
                     f'<text x="{px(x) + 4:.1f}" y="{top + 10}" class="ax">{escape(label)}</text>')
    legend_x = left + 8 * len(title) + 24
    for i, (name, vs) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(xs, vs) if v is not None)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        # The swatch is a shape of its own: the legend text's class sets its fill (grey) in the page's CSS.
        parts.append(f'<rect x="{legend_x}" y="7" width="10" height="10" fill="{colour}" class="swatch"/>'
                     f'<text x="{legend_x + 14}" y="16" class="ax">{escape(name)}</text>')
        legend_x += 28 + 6 * len(name)  # about 6 px per character at 11 px
    for x, y, label in points:
        label_y = py(y) - 9 if py(y) - 9 > top + 12 else py(y) + 18  # below the dot when the legend is above it
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="5" class="best"/>'
                     f'<text x="{px(x):.1f}" y="{label_y:.1f}" class="ax" text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, bars: list[tuple[str, float]], unit: str, width: int = 560) -> str:
    """Horizontal bars, one per (label, value)."""
    row, left, top = 24, 230, 28
    height = top + row * len(bars) + 8
    hi = max((v for _, v in bars), default=1.0) or 1.0
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" class="chart">',
             f'<text x="4" y="16" class="ct">{escape(title)}</text>']
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        w = (width - left - 70) * value / hi
        parts.append(f'<text x="{left - 6}" y="{y + 15}" class="ax" text-anchor="end">{escape(label[:34])}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{PALETTE[0]}"/>'
                     f'<text x="{left + w + 4:.1f}" y="{y + 15}" class="ax">{value:.2f} {escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)
