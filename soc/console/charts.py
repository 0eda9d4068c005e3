"""Charts drawn on the server as inline SVG (no script, no style attribute: the console's CSP
allows neither inline scripts nor inline styles, and SVG presentation attributes are neither):
stacked daily bars for the posture trend and lines for a dashboard's time series panels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 1000, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 10, 26
PALETTE = ("#1f5fbf", "#c2410c", "#2f6f3e", "#8e1020", "#a16207", "#6b21a8", "#0e7490",
           "#4b5563")
SEVERITY_COLOURS = {"critical": "#8e1020", "high": "#c2410c", "medium": "#a16207",
                    "low": "#2f6f3e", "informational": "#4b5563"}


def _frame(title: str, body: list[str], ymax: float, labels: Sequence[str],
           legend: Sequence[tuple[str, str]]) -> Markup:
    """The axes, the y scale (0, half, max), at most 8 x labels and the legend around body."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 18 * bool(legend)}" '
             f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#d9dde5" stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-size="10" fill="#5d6575">{_number(ymax * fraction)}</text>')
    parts += body
    n = len(labels)
    step = max(1, -(-n // 8))
    for i in range(0, n, step):
        x = LEFT + plot_w * (i + 0.5) / max(n, 1)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="10" '
                     f'fill="#5d6575">{escape(labels[i])}</text>')
    x = LEFT
    for name, colour in legend:
        parts.append(f'<rect x="{x}" y="{HEIGHT + 4}" width="10" height="10" '
                     f'fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{HEIGHT + 13}" font-size="11" '
                     f'fill="#1d2330">{escape(name)}</text>')
        x += 22 + 7 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float]],
                 colours: dict[str, str] | None = None) -> Markup:
    """One bar per label, the series stacked in their order (e.g. alerts per day by severity)."""
    colours = colours or {}
    names = list(series)
    totals = [sum(series[s][i] for s in names) for i in range(len(labels))]
    ymax = _nice(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(labels), 1)
    body = []
    for i, label in enumerate(labels):
        base = 0.0
        for k, name in enumerate(names):
            value = float(series[name][i] or 0)
            if value <= 0:
                continue
            h = plot_h * value / ymax
            y = TOP + plot_h * (1 - (base + value) / ymax)
            body.append(f'<rect x="{LEFT + slot * i + slot * 0.15:.1f}" y="{y:.1f}" '
                        f'width="{max(slot * 0.7, 1):.1f}" height="{h:.1f}" '
                        f'fill="{colours.get(name, PALETTE[k % len(PALETTE)])}">'
                        f"<title>{escape(label)}: {escape(name)} {_number(value)}</title>"
                        "</rect>")
            base += value
    legend = [(n, colours.get(n, PALETTE[k % len(PALETTE)])) for k, n in enumerate(names)]
    return _frame(title, body, ymax, labels, legend)


def lines(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]]
          ) -> Markup:
    """One line per series over the labels (a dashboard's time series panel)."""
    values = [float(v) for s in series.values() for v in s if v is not None]
    ymax = _nice(max(values, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(labels)
    body = []
    for k, (name, points) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        coords = [(LEFT + plot_w * (i + 0.5) / max(n, 1),
                   TOP + plot_h * (1 - float(v) / ymax))
                  for i, v in enumerate(points) if v is not None]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                        'stroke-width="2"/>')
        for (x, y), (label, v) in zip(coords, [(labels[i], v) for i, v in enumerate(points)
                                               if v is not None], strict=True):
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3 if n < 40 else 1.5}" '
                        f'fill="{colour}"><title>{escape(label)}: {escape(name)} '
                        f"{_number(float(v or 0))}</title></circle>")
    legend = [(n_, PALETTE[k % len(PALETTE)]) for k, n_ in enumerate(series)]
    return _frame(title, body, ymax, labels, legend)


def time_label(value: object) -> str:
    """A short label of a bucket: `12-06 14:00` for a time, the text itself otherwise."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if (moment.hour, moment.minute) == (0, 0):
        return moment.strftime("%m-%d")
    return moment.strftime("%m-%d %H:%M")


def _nice(value: float) -> float:
    """A round maximum for the y axis at or above `value`."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
