"""Hand-written inline SVG charts: no JavaScript, no library, nothing fetched from elsewhere.

The charts are small (a bar per day for a month) and server-rendered, so they show at once
on a phone, print, and need no static asset. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    css_class: str  # colours live in the stylesheet, so the chart follows the page's theme


@dataclass(frozen=True)
class _Frame:
    """A chart's geometry: its size, its padding, the value at its top and one slot per label."""

    width: int
    height: int
    count: int  # how many slots (at least one)
    top: float
    pad_left: int = 34
    pad_bottom: int = 18
    pad_top: int = 8

    @property
    def plot_w(self) -> float:
        return self.width - self.pad_left - 4

    @property
    def plot_h(self) -> float:
        return self.height - self.pad_bottom - self.pad_top

    @property
    def step(self) -> float:
        return self.plot_w / self.count

    @property
    def bar_w(self) -> float:
        return max(self.step * 0.8, 1)

    @property
    def base(self) -> float:
        return self.pad_top + self.plot_h

    def y(self, value: float) -> float:
        return self.pad_top + self.plot_h - self.plot_h * value / self.top


def bar_chart(
    labels: Sequence[str],
    bars: Series,
    *,
    overlays: Sequence[Series] = (),
    line: float | None = None,
    line_label: str = "",
    title: str = "",
    width: int = 640,
    height: int = 180,
) -> SafeString:
    """Bars of ``bars`` per label, thinner ``overlays`` drawn inside each bar (bounces,
    replies...), and an optional horizontal ``line`` (a cap). Scales to its container."""
    top = max([*bars.values, *(v for s in overlays for v in s.values), line or 0, 1])
    frame = _Frame(width, height, max(len(labels), 1), top)
    legend = format_html_join(
        " ",
        '<span class="legend {}">{}</span>',
        ((s.css_class, s.name) for s in [bars, *overlays]),
    )
    return format_html(
        '<figure class="chart"><svg viewBox="0 0 {} {}" role="img" aria-label="{}">'
        "{}{}{}{}</svg><figcaption>{}{}</figcaption></figure>",
        width,
        height,
        title,
        _scale(frame),
        _bars(frame, labels, bars, overlays),
        _cap_line(frame, line, line_label) if line else "",
        _ticks(frame, labels),
        legend,
        format_html(' <span class="legend chart-line">{}</span>', line_label) if line else "",
    )


def _rect(frame: _Frame, series: Series, label: str, value: float, x: float, w: float) -> str:
    return format_html(
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}</title></rect>',
        series.css_class,
        _f(x),
        _f(frame.y(value)),
        _f(w),
        _f(frame.base - frame.y(value)),
        label,
        _num(value),
        series.name,
    )


def _bars(
    frame: _Frame, labels: Sequence[str], bars: Series, overlays: Sequence[Series]
) -> SafeString:
    """A bar per label, and inside it a thinner bar per overlay with a value that day."""
    parts = []
    inner = frame.bar_w / (len(overlays) + 1)
    for i, label in enumerate(labels):
        x = frame.pad_left + i * frame.step + (frame.step - frame.bar_w) / 2
        value = bars.values[i] if i < len(bars.values) else 0
        parts.append(_rect(frame, bars, label, value, x, frame.bar_w))
        for j, series in enumerate(overlays):
            v = series.values[i] if i < len(series.values) else 0
            if v:
                parts.append(_rect(frame, series, label, v, x + inner * (j + 0.5), inner))
    return SafeString("".join(parts))


def _ticks(frame: _Frame, labels: Sequence[str]) -> SafeString:
    """About eight labels along the axis, and always the last one."""
    n = frame.count
    return format_html_join(
        "",
        '<text class="chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
        (
            (_f(frame.pad_left + i * frame.step + frame.step / 2), frame.height - 4, label)
            for i, label in enumerate(labels)
            if i % max(1, n // 8) == 0 or i == n - 1
        ),
    )


def _scale(frame: _Frame) -> SafeString:
    """The top value and 0 on the left, and the base line."""
    return format_html(
        '<text class="chart-axis" x="{}" y="{}" text-anchor="end">{}</text>'
        '<text class="chart-axis" x="{}" y="{}" text-anchor="end">0</text>'
        '<line class="chart-base" x1="{}" x2="{}" y1="{}" y2="{}"/>',
        frame.pad_left - 4,
        frame.pad_top + 8,
        _num(frame.top),
        frame.pad_left - 4,
        frame.base,
        frame.pad_left,
        frame.width - 4,
        frame.base,
        frame.base,
    )


def _cap_line(frame: _Frame, line: float, line_label: str) -> SafeString:
    return format_html(
        '<line class="chart-line" x1="{}" x2="{}" y1="{}" y2="{}"><title>{} {}</title></line>',
        frame.pad_left,
        frame.width - 4,
        _f(frame.y(line)),
        _f(frame.y(line)),
        line_label,
        _num(line),
    )


def _f(value: float) -> str:
    return f"{value:.1f}"


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def sends_chart(
    series: Sequence[Mapping[str, Any]],
    *,
    title: str,
    complaints: bool = False,
    line: float | None = None,
    line_label: str = "",
) -> SafeString:
    """The chart of a daily series (each day's ``day``, ``sent``, ``replied``, ``bounced`` and,
    with ``complaints``, ``complained``): sends as bars, the rest drawn inside them, and an
    optional cap ``line``. The overview, a mailbox, a campaign and the trends all draw it."""
    overlays = [
        Series("replied", [d["replied"] for d in series], "bar-replied"),
        Series("bounced", [d["bounced"] for d in series], "bar-bounced"),
    ]
    if complaints:
        overlays.append(Series("complaints", [d["complained"] for d in series], "bar-complained"))
    return bar_chart(
        [f"{d['day']:%d %b}" for d in series],
        Series("sent", [d["sent"] for d in series], "bar-sent"),
        overlays=overlays,
        line=line,
        line_label=line_label,
        title=title,
    )
