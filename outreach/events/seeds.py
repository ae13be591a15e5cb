"""Seed-inbox placement checks: our mail found in a seed's spam folder is a block.

A seed (``[warmup] seeds`` in pool.toml) may come with IMAP access::

    { address = "seed1@gmail.example", imap_host = "imap.gmail.com",
      imap_password = { env = "OUTREACH_SECRET_SEED1_IMAP" }, spam_folders = ["[Gmail]/Spam"] }

(``imap_port``, ``imap_security`` = ``ssl`` | ``starttls`` | ``plain`` and ``imap_username``
as for a mailbox; ``spam_folders`` defaults to ``["Junk"]``). Its spam folders are read the
way the IMAP reader reads a mailbox's folders: a :class:`SeedCursor` per folder (UIDVALIDITY
and last UID), so no mail is looked at twice. Each of our messages found there becomes a
``blocked`` event about it, source ``seed``; the health rules then put its mailbox in
cooldown, as for a policy rejection (docs/rules.md, Health thresholds: spam-folder placement).

A message is ours when its Message-ID is one we sent *to that seed*: spam from anyone else,
or a copy of one of our messages forwarded there, never blames a mailbox. The inbox itself
is not read: landing there needs no action.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from email.parser import BytesParser
from email.policy import compat32
from typing import Any

from django.db.models import Q

from outreach.events import normalize as n
from outreach.events.inbox import (
    ImapConfig,
    build_imap_config,
    claim_and_read,
    header_text,
    mail_date,
    read_new_mail,
)
from outreach.events.models import SeedCursor
from outreach.events.record import find_message, record
from outreach.lib import clock
from outreach.pool.models import PoolSettings

log = logging.getLogger(__name__)

# Placement is a slow signal (one seed sees a handful of warm-up mails a day): every ten
# minutes is soon enough, and seed providers frown on tighter polling.
POLL_INTERVAL = timedelta(minutes=10)
DEFAULT_SPAM_FOLDERS = ("Junk",)


def seeds_with_imap(pool: PoolSettings | None = None) -> dict[str, dict[str, Any]]:
    """The seeds configured with IMAP access, by address."""
    pool = pool or PoolSettings.load()
    return {
        str(item["address"]).lower(): item
        for item in pool.seed_addresses or []
        if isinstance(item, dict) and item.get("address") and item.get("imap_host")
    }


def spam_folders(seed: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(f) for f in seed.get("spam_folders") or DEFAULT_SPAM_FOLDERS)


def imap_config(seed: dict[str, Any]) -> ImapConfig:
    """How to read ``seed``; raises :class:`SecretError` or ValueError when it cannot be."""
    address = str(seed["address"])
    return build_imap_config(
        seed, seed.get("imap_password"), address, spam_folders(seed), label=f"seed {address}"
    )


def record_placement(raw: bytes, seed: str, folder: str, where: str) -> int:
    """A ``blocked`` event for one mail of a seed's spam folder when it is one of our messages
    to that seed; returns 1 when a new event was stored."""
    mail = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
    message_id = header_text(mail, "Message-ID").strip()
    if not message_id:
        return 0
    incoming = n.Incoming(
        source="seed",
        type=n.BLOCKED,
        recipient=seed,
        occurred_at=mail_date(mail),
        provider_event_id=f"seed:{seed}:{message_id}"[:255],
        referenced_message_ids=[message_id],
        diagnostic=f"delivered to the spam folder {folder!r} of seed {seed}",
        raw={"seed": seed, "folder": folder, "message_id": message_id, "where": where},
    )
    found = find_message(incoming)
    if found is None or found.to_email.lower() != seed:
        return 0
    incoming.outreach_message_id = found.pk
    return 1 if record(incoming) is not None else 0


def ensure_cursors(seeds: dict[str, dict[str, Any]]) -> None:
    """A cursor for every configured spam folder; those of folders no longer configured go
    (a seed's folder read again later starts over: its events' ids keep it from counting
    twice)."""
    wanted = {(address, folder) for address, seed in seeds.items() for folder in spam_folders(seed)}
    for cursor in SeedCursor.objects.all():
        if (cursor.address, cursor.folder) not in wanted:
            cursor.delete()
    for address, folder in sorted(wanted):
        SeedCursor.objects.get_or_create(address=address, folder=folder)


def read_one_due() -> bool:
    """Claim the seed folder most overdue for a check and read it; False when none is due.

    Claimed like an inbox folder: a conditional UPDATE of ``next_check_at``, so two readers
    never read one folder at once.
    """
    now = clock.now()
    seeds = seeds_with_imap()
    if not seeds:
        return False
    ensure_cursors(seeds)
    due = (
        SeedCursor.objects.filter(address__in=list(seeds))
        .filter(Q(next_check_at__isnull=True) | Q(next_check_at__lte=now))
        .order_by("next_check_at", "pk")
        .first()
    )
    if due is None:
        return False

    def handle(raw: bytes, where: str) -> int:
        return record_placement(raw, due.address, due.folder, where)

    def read() -> tuple[int, bool]:
        return read_new_mail(due, imap_config(seeds[due.address]), handle)

    found = claim_and_read(due, now, POLL_INTERVAL, read, label=f"seed {due.address}")
    if found:
        log.warning("seed %s: %d of our messages in %s", due.address, found, due.folder)
    return True
