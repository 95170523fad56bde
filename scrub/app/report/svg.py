"""Dependency-free SVG plots for the HTML report: histograms (the hypothesis tree is in graph_svg.py).

Plain strings, no matplotlib: the report must be self-contained and the
toolkit must not pull a plotting stack. Every text that reaches the SVG goes
through `esc` (names in the record are user text).
"""

from __future__ import annotations

import html
import math
from typing import Iterable, Mapping, Optional, Sequence

PALETTE = ("#4269d0", "#ef8a3c", "#3ca951", "#ff725c", "#a463f2", "#97bbf5", "#9c6b4e", "#6cc5b0")
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\""


def esc(text: object) -> str:
    """Escape any value for use in SVG/HTML text or attributes."""
    return html.escape(str(text), quote=True)


def _finite(values: Iterable) -> list[float]:
    out = []
    for v in values or ():
        if v is None or isinstance(v, bool):
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick positions (1, 2, 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t, i = [], first, 0
    while t <= hi + step * 1e-9 and i < 100:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        i += 1
        t = first + i * step
    return ticks


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """The shortest labels (fewest significant digits) that still tell every tick apart."""
    step = min((abs(b - a) for a, b in zip(ticks, ticks[1:])), default=0.0)
    labels = [f"{t:.1g}" for t in ticks]
    for digits in range(1, 13):
        labels = [f"{t:.{digits}g}" for t in ticks]
        exact = all(abs(float(s) - t) <= step * 1e-3 for s, t in zip(labels, ticks))
        if len(set(labels)) == len(labels) and exact:
            break
    return labels


def _text(x: float, y: float, s: object, *, size: int = 11, anchor: str = "start", weight: str = "normal",
          fill: str = "#222", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}"{extra}>{esc(s)}</text>')


def histogram(series: Mapping[str, Sequence], *, title: str = "", xlabel: str = "", ylabel: str = "count",
              bins: Optional[int] = None, mode: str = "overlay", markers: Optional[Mapping[str, object]] = None,
              width: int = 960, height: int = 320, svg_id: Optional[str] = None) -> str:
    """Histograms of several named distributions on one shared binning.

    mode "overlay" draws translucent full-width bars on top of each other;
    "grouped" puts the series side by side inside each bin. markers maps a
    label to an x value drawn as a dashed vertical line (None is skipped).
    Bars carry class "bar" and data-series with the series name.
    """
    if mode not in ("overlay", "grouped"):
        raise ValueError(f"histogram mode must be 'overlay' or 'grouped', got {mode!r}")
    data = {str(name): _finite(vals) for name, vals in series.items()}
    marks = {str(k): float(v) for k, v in (markers or {}).items() if _finite([v])}
    pool = [v for vals in data.values() for v in vals] + list(marks.values())
    ml, mr, mt, mb = 56, 16, 30 if title else 12, 62
    pw, ph = width - ml - mr, height - mt - mb
    ident = f' id="{esc(svg_id)}"' if svg_id else ""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg"{ident} class="plot histogram" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" {FONT}>']
    if title:
        out.append(f"<title>{esc(title)}</title>")
        out.append(_text(ml, 18, title, size=13, weight="600"))
    if not pool:
        out.append(_text(width / 2, height / 2, "no values to plot", size=13, anchor="middle", fill="#777"))
        return "".join(out) + "</svg>"

    lo, hi = min(pool), max(pool)
    if hi - lo <= 1e-12 * max(1.0, abs(lo)):
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    n_max = max((len(v) for v in data.values()), default=1)
    nb = bins or int(min(40, max(8, math.ceil(math.sqrt(n_max) * 1.5))))
    step = (hi - lo) / nb
    counts: dict[str, list[int]] = {}
    for name, vals in data.items():
        c = [0] * nb
        for v in vals:
            c[min(nb - 1, max(0, int((v - lo) / step)))] += 1
        counts[name] = c
    cmax = max((max(c) for c in counts.values()), default=1) or 1
    ystep = max(1, math.ceil(nice_ticks(0, cmax, 4)[1])) if cmax > 1 else 1
    ytop = ystep * math.ceil(cmax / ystep)
    yticks = [float(t) for t in range(0, ytop + 1, ystep)]

    def sx(v: float) -> float:
        return ml + (v - lo) / (hi - lo) * pw

    def sy(v: float) -> float:
        return mt + ph - v / ytop * ph

    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fafafa" stroke="none"/>')
    for t in yticks:  # gridlines and y labels
        y = sy(t)
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        out.append(_text(ml - 6, y + 4, f"{int(t)}", size=10, anchor="end", fill="#555"))
    k = len(counts)
    for si, (name, c) in enumerate(counts.items()):
        colour = PALETTE[si % len(PALETTE)]
        for b, n in enumerate(c):
            if not n:
                continue
            x0, x1 = sx(lo + b * step), sx(lo + (b + 1) * step)
            if mode == "grouped":
                w = (x1 - x0) / k
                x0, x1 = x0 + si * w, x0 + (si + 1) * w
            tip = f"{name}: {n} in [{lo + b * step:.4g}, {lo + (b + 1) * step:.4g})"
            out.append(f'<rect class="bar" data-series="{esc(name)}" x="{x0 + 0.5:.1f}" y="{sy(n):.1f}" '
                       f'width="{max(x1 - x0 - 1, 0.8):.1f}" height="{sy(0) - sy(n):.1f}" fill="{colour}" '
                       f'fill-opacity="{0.45 if mode == "overlay" and k > 1 else 0.85}" stroke="{colour}" '
                       f'stroke-width="0.8"><title>{esc(tip)}</title></rect>')
    for mi, (label, v) in enumerate(marks.items()):
        x = sx(v)
        out.append(f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{mt}" y2="{mt + ph}" stroke="#111" '
                   f'stroke-width="1.5" stroke-dasharray="5 3"><title>{esc(label)}: {v:.4g}</title></line>')
        right = x < ml + pw * 0.7
        out.append(_text(x + (4 if right else -4), mt + 12 + 13 * mi, f"{label} = {v:.4g}", size=10,
                         anchor="start" if right else "end", fill="#111",
                         extra=' stroke="#fafafa" stroke-width="3" paint-order="stroke"'))
    xticks = [t for t in nice_ticks(lo, hi, 6) if lo - 1e-12 <= t <= hi + 1e-12]
    base = mt + ph
    out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{base}" y2="{base}" stroke="#333"/>')
    out.append(f'<line x1="{ml}" x2="{ml}" y1="{mt}" y2="{base}" stroke="#333"/>')
    for t, label in zip(xticks, tick_labels(xticks)):
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" stroke="#333"/>')
        out.append(_text(x, base + 16, label, size=10, anchor="middle", fill="#555"))
    if xlabel:
        out.append(_text(ml + pw / 2, base + 32, xlabel, size=11, anchor="middle"))
    if ylabel:
        out.append(_text(14, mt + ph / 2, ylabel, size=11, anchor="middle",
                         extra=f' transform="rotate(-90 14 {mt + ph / 2:.1f})"'))
    lx, ly = ml, height - 10  # legend along the bottom
    for si, (name, vals) in enumerate(data.items()):
        colour = PALETTE[si % len(PALETTE)]
        mean = f"mean {sum(vals) / len(vals):.4g}" if vals else "no values"
        label = f"{name} (n={len(vals)}, {mean})"
        out.append(f'<rect class="legend" x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}" '
                   f'fill-opacity="0.7" stroke="{colour}"/>')
        out.append(_text(lx + 14, ly, label, size=10))
        lx += 24 + int(len(label) * 5.6)
    return "".join(out) + "</svg>"
