"""The HTML report of `outreach simulate`: one self-contained page (inline CSS and SVG, no
script, nothing fetched) beside the JSON figures the simulation returned."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

_COLORS = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777")


def write_report(data: dict[str, Any], directory: Path) -> Path:
    """Write ``index.html`` (self-contained: inline CSS and SVG, no script, nothing fetched)
    and ``simulation.json`` into ``directory``; returns the HTML file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "simulation.json").write_text(json.dumps(data, indent=2, sort_keys=True))
    path = directory / "index.html"
    path.write_text(render_html(data), encoding="utf-8")
    return path


def render_html(data: dict[str, Any]) -> str:
    rows = "".join(_day_row(d) for d in data["days"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>outreach simulation from {escape(data["start"])}</title>
{_STYLE}</head><body>
{_summary(data)}
<h2>Daily sends against capacity</h2>
{_sends_chart(data["days"])}
<h2>Warm-up ramp per mailbox</h2>
{_ramp_chart(data["days"], data["mailboxes"])}
<h2>Day by day</h2>
<table><thead><tr><th>date</th><th></th><th>capacity</th><th>sent</th><th>campaign</th>
<th>warm-up</th><th>util.</th><th>max/mailbox</th><th>caps exceeded</th><th>mailboxes</th>
<th>bounces / complaints</th><th>pauses and graduations</th></tr></thead>
<tbody>{rows}</tbody></table>
<p>{data["passes"]} passes of the control plane in {data["elapsed_seconds"]} s.</p>
</body></html>
"""


_STYLE = """<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1f2937; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; }
.card { border: 1px solid #e5e7eb; border-radius: 6px; padding: .6rem .9rem; min-width: 9rem; }
.card b { display: block; font-size: 1.3rem; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e7eb; padding: .3rem .4rem; text-align: right;
          vertical-align: top; }
th:nth-child(n+10), td:nth-child(n+10) { text-align: left; }
td.bad { color: #b91c1c; font-weight: bold; }
td:first-child { white-space: nowrap; }
svg text { font: 11px system-ui, sans-serif; fill: #4b5563; }
.legend span { margin-right: 1rem; } .swatch { display: inline-block; width: .8rem;
  height: .8rem; margin-right: .3rem; vertical-align: middle; }
</style>"""


def _summary(data: dict[str, Any]) -> str:
    """The title, the simulation's settings and its totals as cards."""
    t = data["totals"]
    c = data["campaign"]
    finish = data["finish_date"] or "not within sight"
    if data["finish_date"] and data["finish_date_projected"]:
        finish += " (projected)"
    days, start = len(data["days"]), escape(data["start"])
    return f"""<h1>Simulation: {escape(c["slug"])} on {days} days from {start}</h1>
<p>Pool time zone {escape(data["timezone"])}; {c["enrolled"]} leads enrolled in a
{c["steps"]}-step campaign (window {escape(c["window"]["start"])}–{escape(c["window"]["end"])}
in the lead's time zone, campaign cap {c["daily_cap"] or "none"}); hard-bounce rate
{data["options"]["bounce_rate"]:.2%}, complaint rate {data["options"]["complaint_rate"]:.3%},
seed {data["options"]["seed"]}.</p>
<div class="cards">
<div class="card">finish date<b>{escape(finish)}</b></div>
<div class="card">sent<b>{t["sent"]}</b>{t["campaign_sent"]} campaign,
{t["warmup_sent"]} warm-up</div>
<div class="card">utilization<b>{t["utilization"]:.0%}</b>of {t["capacity"]} capacity</div>
<div class="card">caps exceeded<b>{t["cap_exceeded"]}</b>checked against every send</div>
<div class="card">pauses<b>{t["pauses"]}</b>{t["hard_bounces"]} bounces,
{t["complaints"]} complaints</div>
</div>"""


def _day_row(d: dict[str, Any]) -> str:
    """One day of the table: its sends, use, caps, mailboxes, bounces and pauses."""
    states = ", ".join(f"{k} {v}" for k, v in d["mailboxes_by_state"].items())
    pauses = "".join(
        f"<div>{escape(p['mailbox'] or p.get('domain', ''))} → {escape(p['to_state'])}: "
        f"{escape(p['reason'])}</div>"
        for p in d["pauses"]
    )
    graduated = f"<div>graduated: {len(d['graduated'])}</div>" if d["graduated"] else ""
    bad = ' class="bad"' if d["cap_exceeded"] else ""
    return (
        f"<tr><td>{d['date']}</td><td>{d['weekday']}</td><td>{d['capacity']}</td>"
        f"<td>{d['sent']}</td><td>{d['campaign_sent']}</td><td>{d['warmup_sent']}</td>"
        f"<td>{d['utilization']:.0%}</td><td>{d['sent_by_mailbox_max']}</td>"
        f"<td{bad}>{d['cap_exceeded']}</td><td>{escape(states)}</td>"
        f"<td>{d['hard_bounces']} / {d['complaints']}</td><td>{pauses}{graduated}</td></tr>"
    )


def _axis(width: int, height: int, pad: int, top: float, days: list[dict[str, Any]]) -> str:
    parts = []
    for i in range(5):
        value = top * i / 4
        y = height - pad - (height - 2 * pad) * i / 4
        parts.append(
            f'<line x1="{pad}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.0f}</text>'
        )
    step = max(1, len(days) // 10)
    slot = (width - pad - 10) / max(1, len(days))
    for i, d in enumerate(days):
        if i % step == 0:
            x = pad + slot * (i + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{height - pad + 14}" text-anchor="middle">'
                f"{d['date'][5:]}</text>"
            )
    return "".join(parts)


def _sends_chart(days: list[dict[str, Any]]) -> str:
    width, height, pad = 1000, 300, 40
    top = max([d["capacity"] for d in days] + [d["sent"] for d in days] + [1]) * 1.1
    scale = (height - 2 * pad) / top
    slot = (width - pad - 10) / max(1, len(days))
    bars, capacity = [], []
    for i, d in enumerate(days):
        x = pad + slot * i + slot * 0.15
        w = slot * 0.7
        base = height - pad
        hc, hw = d["campaign_sent"] * scale, d["warmup_sent"] * scale
        tip = f"{d['date']}: {d['sent']} sent of {d['capacity']}"
        bars.append(
            f'<g><title>{tip}</title><rect x="{x:.1f}" y="{base - hc:.1f}" width="{w:.1f}" '
            f'height="{hc:.1f}" fill="#2563eb"/><rect x="{x:.1f}" y="{base - hc - hw:.1f}" '
            f'width="{w:.1f}" height="{hw:.1f}" fill="#f59e0b"/></g>'
        )
        y = base - d["capacity"] * scale
        capacity.append(f"{pad + slot * i:.1f},{y:.1f} {pad + slot * (i + 1):.1f},{y:.1f}")
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="daily sends against capacity">{_axis(width, height, pad, top, days)}'
        f'{"".join(bars)}<polyline fill="none" stroke="#111827" stroke-width="2" '
        f'points="{" ".join(capacity)}"/></svg><div class="legend">'
        '<span><i class="swatch" style="background:#2563eb"></i>campaign</span>'
        '<span><i class="swatch" style="background:#f59e0b"></i>warm-up</span>'
        '<span><i class="swatch" style="background:#111827"></i>capacity</span></div>'
    )


def _ramp_chart(days: list[dict[str, Any]], mailboxes: list[dict[str, Any]]) -> str:
    warmed = [m for m in mailboxes if m["warmed"]]
    if not warmed:
        return "<p>No mailbox was warming during the simulation.</p>"
    width, height, pad = 1000, 300, 40
    top = max([max(m["cap"] + m["sent"] + [1]) for m in warmed]) * 1.15
    scale = (height - 2 * pad) / top
    slot = (width - pad - 10) / max(1, len(days))
    lines, legend = [], []
    for n, m in enumerate(warmed):
        color = _COLORS[n % len(_COLORS)]
        points = " ".join(
            f"{pad + slot * (i + 0.5):.1f},{height - pad - v * scale:.1f}"
            for i, v in enumerate(m["sent"][: _warming_days(m)])
        )
        lines.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}">'
            f"<title>{escape(m['address'])}</title></polyline>"
        )
        legend.append(
            f'<span><i class="swatch" style="background:{color}"></i>{escape(m["address"])} '
            f"({escape(m['state'])})</span>"
        )
    # The schedule itself (docs/rules.md, Warm-up), from the first warmed mailbox's caps.
    cap_points = " ".join(
        f"{pad + slot * (i + 0.5):.1f},{height - pad - v * scale:.1f}"
        for i, v in enumerate(warmed[0]["cap"][: _warming_days(warmed[0])])
    )
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="warm-up ramp per mailbox">{_axis(width, height, pad, top, days)}'
        f'<polyline fill="none" stroke="#111827" stroke-dasharray="5 4" stroke-width="2" '
        f'points="{cap_points}"><title>cap of the day</title></polyline>{"".join(lines)}</svg>'
        f'<div class="legend"><span><i class="swatch" style="background:#111827"></i>'
        f"cap of the day ({escape(warmed[0]['address'])})</span>{''.join(legend)}</div>"
        + (
            f"<p>All {len(warmed)} mailboxes sent exactly the same ramp: their lines overlap.</p>"
            if len(warmed) > 1 and all(m["sent"] == warmed[0]["sent"] for m in warmed)
            else ""
        )
    )


def _warming_days(mailbox: dict[str, Any]) -> int:
    """How many days from the start the mailbox's ramp covers: while it was warming, and the
    day it graduated (its state at the end of that day is already ``active``)."""
    states = mailbox["states"]
    last = max((i for i, state in enumerate(states) if state == "warming"), default=-1)
    return min(len(states), last + 2)
