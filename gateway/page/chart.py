"""A tag over a lot's window as an SVG chart, drawn on the server: the band of each minute's min and
max, the mean as a line, the limits as dashed lines and the time out of limits shaded."""

from __future__ import annotations

import math
import time
from html import escape
from typing import Any

W, H = 920, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36
DOTS = 30  # up to this many minutes, each is also drawn as a dot


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round values between lo and hi, about n of them."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


def clock(t: float, span: float) -> str:
    fmt = "%H:%M:%S" if span < 300 else "%H:%M" if span < 86400 else "%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(t))


def number(v: float) -> str:
    return f"{v:.6g}"


def _range(tag: dict[str, Any]) -> tuple[float, float, float, float]:
    pts = tag.get("series") or []
    t0, t1 = pts[0]["t"], pts[-1]["t"] + 60
    values = [p[k] for p in pts for k in ("min", "max") if p.get(k) is not None]
    limits = tag.get("limits") or {}
    values += [v for v in (limits.get("low"), limits.get("high")) if v is not None]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    return t0, t1, lo - pad, hi + pad


def drawable(tag: dict[str, Any]) -> list[dict[str, Any]]:
    """The minutes of a tag that have numbers (text tags and empty minutes have none)."""
    return [p for p in tag.get("series") or [] if all(isinstance(p.get(k), (int, float)) for k in ("t", "min", "max", "mean"))]


def svg(tag: dict[str, Any], words: dict[str, str]) -> str:
    """The chart of one entry of a trace answer's `tags` (or `environment`); empty without points."""
    pts = drawable(tag)
    if not pts:
        return ""
    t0, t1, lo, hi = _range({**tag, "series": pts})
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(t: float) -> float:
        return round(LEFT + (t - t0) / (t1 - t0) * pw, 1)

    def mid(p: dict[str, Any]) -> float:  # a point stands for its whole minute: drawn at its middle
        return x(p["t"] + 30)

    def y(v: float) -> float:
        return round(TOP + (hi - v) / (hi - lo) * ph, 1)

    title = f"{tag.get('device')}/{tag.get('tag')}" + (f" ({tag['unit']})" if tag.get("unit") else "")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
           f'<text class="title" x="{LEFT}" y="18">{escape(title)}</text>']
    for span in tag.get("out_of_limits") or []:
        a, b = max(span["from"], t0), min(span["to"], t1)
        if b > a:
            out.append(f'<rect class="excursion" x="{x(a)}" y="{TOP}" width="{round(x(b) - x(a), 1) or 1}" height="{ph}"/>')
    for v in ticks(lo, hi):
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v)}" y2="{y(v)}"/>'
                   f'<text class="axis" x="{LEFT - 6}" y="{y(v) + 4}" text-anchor="end">{number(v)}</text>')
    for i, anchor in enumerate(("start", "middle", "middle", "middle", "end")):
        t = t0 + (t1 - t0) * i / 4
        out.append(f'<text class="axis" x="{x(t)}" y="{H - 12}" text-anchor="{anchor}">{clock(t, t1 - t0)}</text>')
    band = [f"{mid(p)},{y(p['max'])}" for p in pts] + [f"{mid(p)},{y(p['min'])}" for p in reversed(pts)]
    out.append('<polygon class="band" points="%s"/>' % " ".join(band))
    mean = " ".join(f"{mid(p)},{y(p['mean'])}" for p in pts)
    out.append(f'<polyline class="mean" points="{mean}"/>')
    if len(pts) <= DOTS:  # a short window: each minute as a dot, or a single minute would not show
        out += [f'<circle class="point" cx="{mid(p)}" cy="{y(p["mean"])}" r="3"/>' for p in pts]
    for side, v in sorted((tag.get("limits") or {}).items()):
        if v is not None:
            out.append(f'<line class="limit {escape(side)}" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v)}" y2="{y(v)}"/>'
                       f'<text class="limit-label" x="{W - RIGHT - 4}" y="{y(v) - 4}" text-anchor="end">{escape(words.get("limit", "limit"))} {escape(side)} {number(v)}</text>')
    out.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/></svg>')
    return "\n".join(out)
