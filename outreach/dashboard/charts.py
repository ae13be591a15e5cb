"""Hand-written inline SVG charts: no JavaScript, no library, nothing fetched from elsewhere.

The charts are small (a bar per day for a month) and server-rendered, so they show at once
on a phone, print, and need no static asset. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    css_class: str  # colours live in the stylesheet, so the chart follows the page's theme


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
    pad_left, pad_bottom, pad_top = 34, 18, 8
    plot_w, plot_h = width - pad_left - 4, height - pad_bottom - pad_top
    n = max(len(labels), 1)
    top = max([*bars.values, *(v for s in overlays for v in s.values), line or 0, 1])
    step = plot_w / n
    bar_w = max(step * 0.8, 1)

    def y(value: float) -> float:
        return pad_top + plot_h - plot_h * value / top

    parts = []
    for i, label in enumerate(labels):
        x = pad_left + i * step + (step - bar_w) / 2
        value = bars.values[i] if i < len(bars.values) else 0
        parts.append(
            format_html(
                '<rect class="{}" x="{}" y="{}" width="{}" height="{}">'
                "<title>{}: {} {}</title></rect>",
                bars.css_class,
                _f(x),
                _f(y(value)),
                _f(bar_w),
                _f(pad_top + plot_h - y(value)),
                label,
                _num(value),
                bars.name,
            )
        )
        inner = bar_w / (len(overlays) + 1)
        for j, series in enumerate(overlays):
            v = series.values[i] if i < len(series.values) else 0
            if not v:
                continue
            parts.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{}: {} {}</title></rect>",
                    series.css_class,
                    _f(x + inner * (j + 0.5)),
                    _f(y(v)),
                    _f(inner),
                    _f(pad_top + plot_h - y(v)),
                    label,
                    _num(v),
                    series.name,
                )
            )
    ticks = format_html_join(
        "",
        '<text class="chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>',
        (
            (_f(pad_left + i * step + step / 2), height - 4, label)
            for i, label in enumerate(labels)
            if i % max(1, n // 8) == 0 or i == n - 1
        ),
    )
    scale = format_html(
        '<text class="chart-axis" x="{}" y="{}" text-anchor="end">{}</text>'
        '<text class="chart-axis" x="{}" y="{}" text-anchor="end">0</text>'
        '<line class="chart-base" x1="{}" x2="{}" y1="{}" y2="{}"/>',
        pad_left - 4,
        pad_top + 8,
        _num(top),
        pad_left - 4,
        pad_top + plot_h,
        pad_left,
        width - 4,
        pad_top + plot_h,
        pad_top + plot_h,
    )
    cap = (
        format_html(
            '<line class="chart-line" x1="{}" x2="{}" y1="{}" y2="{}"><title>{} {}</title></line>',
            pad_left,
            width - 4,
            _f(y(line)),
            _f(y(line)),
            line_label,
            _num(line),
        )
        if line
        else ""
    )
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
        scale,
        SafeString("".join(parts)),
        cap,
        ticks,
        legend,
        format_html(' <span class="legend chart-line">{}</span>', line_label) if line else "",
    )


def _f(value: float) -> str:
    return f"{value:.1f}"


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
