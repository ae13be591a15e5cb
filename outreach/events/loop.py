"""The ``inbox`` loop (``outreach inbox``, and inside ``outreach run``): one IMAP folder at a
time, the most overdue first: the mailboxes' folders (replies, bounces, unsubscribes), then
the seeds' spam folders (placement checks)."""

from __future__ import annotations

import threading

from outreach.events import inbox, seeds
from outreach.lib.loop import Loop

# Mailboxes' folders and seeds' folders take turns going first, so a pool whose mailboxes
# are always due still has its seeds read.
_seeds_first = False


def read_one_due() -> bool:
    """Read one due folder; False when no folder of either kind is due."""
    global _seeds_first
    _seeds_first = not _seeds_first
    if _seeds_first:
        return seeds.read_one_due() or inbox.read_one_due()
    return inbox.read_one_due() or seeds.read_one_due()


def make_loop(stop: threading.Event) -> Loop:
    return Loop(name="inbox", handle_one=read_one_due, idle_seconds=10.0, stop=stop)
