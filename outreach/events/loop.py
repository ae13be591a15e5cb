"""The ``inbox`` loop (``outreach inbox``, and inside ``outreach run``): one IMAP folder at a
time, the most overdue first: the mailboxes' folders (replies, bounces, unsubscribes), then
the seeds' spam folders (placement checks)."""

from __future__ import annotations

import threading

from outreach.events import inbox, seeds
from outreach.lib.loop import Loop


def read_one_due() -> bool:
    """Read one due folder; False when no folder of either kind is due."""
    return inbox.read_one_due() or seeds.read_one_due()


def make_loop(stop: threading.Event) -> Loop:
    return Loop(name="inbox", handle_one=read_one_due, idle_seconds=10.0, stop=stop)
