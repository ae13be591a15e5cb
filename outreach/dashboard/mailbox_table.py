"""The mailboxes list's table rows, written out in Python.

A pool of 300 mailboxes makes a 300-row table of twelve cells: through the template engine
that is some 4,500 variable lookups, escapes and filters, most of the page's render time.
Each row is built here once, with every value escaped, and the template prints it whole.
The markup is the one the template had (``dashboard/mailboxes.html``).
"""

from __future__ import annotations

from html import escape

from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timezone import localtime

from outreach.dashboard.pool_rows import MailboxRow


def row_html(row: MailboxRow) -> SafeString:
    """One ``<tr>`` of the mailboxes table, its values escaped."""
    m = row.mailbox
    t = row.rates.text()
    state = escape(str(m.state))
    notes = ""
    if row.held:
        notes += f'<div class="held muted">held: {escape(row.held)}</div>'
    o = row.out_of_service
    if o:
        notes += (
            f'<div class="muted" title="{escape(o.reason)}">since '
            f"{localtime(o.since).strftime('%m-%d %H:%M')}: "
            f"{escape(Truncator(o.reason).chars(60))}<br>{escape(o.way_back)}</div>"
        )
    return mark_safe(  # noqa: S308 - every value above is escaped
        f'\n    <tr><td><a href="{escape(row.href)}">{escape(m.address)}</a></td>'
        f'<td class="state-{state}">{state}{notes}</td><td>{escape(row.warmup_text)}</td>\n'
        f'      <td class="num">{row.cap_today}</td><td class="num">{row.sent_today}</td>'
        f'<td><div class="bar"><span style="width: {row.use_percent}%"></span></div></td>\n'
        f'      <td class="num">{row.rates.sent}</td><td class="num">{escape(t["delivery"])}</td>'
        f'<td class="num">{escape(t["bounce"])}</td>'
        f'<td class="num">{escape(t["complaint"])}</td><td class="num">{escape(t["reply"])}</td>'
        f"<td>{escape(row.last_event_text)}</td></tr>\n  "
    )
