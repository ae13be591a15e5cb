"""Seed placement checks against a real IMAP server (dovecot): our message in a seed's spam
folder is a block about it, and its mailbox goes to cooldown; nothing else is."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email.utils import format_datetime

import pytest
from imap_tools import MailBoxUnencrypted

from outreach.campaigns.models import Message
from outreach.events import loop, seeds
from outreach.events.models import Event, SeedCursor
from outreach.events.tests import dovecot
from outreach.events.tests.conftest import IMAP_SEED, make_sent_message
from outreach.lib import clock
from outreach.pool.models import Mailbox, PoolSettings

pytestmark = pytest.mark.django_db

SEED = IMAP_SEED


@pytest.fixture
def junk(
    imap_server: dovecot.ImapServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MailBoxUnencrypted]:
    """The seed's spam folder, empty, and the seed configured with IMAP access to it."""
    monkeypatch.setenv("OUTREACH_SECRET_SEED_IMAP", imap_server.password)
    pool = PoolSettings.load()
    pool.seed_addresses = [
        "plain.seed@inbox-seeds.example.net",  # no IMAP access: receives warm-up mail only
        {
            "address": SEED,
            "imap_host": imap_server.host,
            "imap_port": imap_server.port,
            "imap_security": "plain",
            "imap_password": "env:OUTREACH_SECRET_SEED_IMAP",
            "spam_folders": ["Junk"],
        },
    ]
    pool.save()
    client = MailBoxUnencrypted(imap_server.host, imap_server.port)
    client.login(SEED, imap_server.password)
    if not client.folder.exists("Junk"):
        client.folder.create("Junk")
    client.folder.set("Junk")
    client.delete(client.uids())
    yield client
    client.logout()


def mail(message_id: str, sender: str = "rep1@send1.example.com") -> bytes:
    return (
        f"From: Rep <{sender}>\r\nTo: {SEED}\r\nSubject: hello\r\n"
        f"Date: {format_datetime(clock.now())}\r\nMessage-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi there\r\n"
    ).encode()


def read_all() -> int:
    folders = 0
    while loop.read_one_due():
        folders += 1
        assert folders < 10
    return folders


def test_our_message_in_a_seed_spam_folder_is_a_block_and_cools_its_mailbox_down(
    junk: MailBoxUnencrypted,
) -> None:
    sent = make_sent_message(SEED)
    to_a_lead = Message.objects.create(
        campaign=sent.message.campaign,
        to_email="lead7@prospect.example.org",
        to_domain="prospect.example.org",
        mailbox=sent.message.mailbox,
        state=Message.State.SENT,
        message_id_header=f"<{uuid.uuid4().hex}@send1.example.com>",
    )
    junk.append(mail(sent.message.message_id_header or ""), "Junk")
    junk.append(mail("<offer-123@spammer.example>", sender="deals@spammer.example"), "Junk")
    # One of our messages to someone else, forwarded to the seed: not a placement of ours.
    junk.append(mail(to_a_lead.message_id_header or ""), "Junk")

    assert read_all() == 1

    [event] = Event.objects.filter(source="seed")
    assert event.type == "blocked" and event.message_id == sent.message.pk
    assert "spam folder 'Junk'" in event.diagnostic and event.recipient == SEED
    assert sent.message.mailbox is not None
    sent.message.mailbox.refresh_from_db()
    assert sent.message.mailbox.state == Mailbox.State.COOLDOWN

    # Read again: nothing is counted twice.
    SeedCursor.objects.update(next_check_at=None)
    assert read_all() == 1
    assert Event.objects.filter(source="seed").count() == 1


def test_a_seed_it_cannot_log_in_to_is_noted_on_its_cursor(
    junk: MailBoxUnencrypted, monkeypatch: pytest.MonkeyPatch, imap_server: dovecot.ImapServer
) -> None:
    monkeypatch.setenv("OUTREACH_SECRET_SEED_IMAP", "wrong")

    assert seeds.read_one_due()

    cursor = SeedCursor.objects.get(address=SEED, folder="Junk")
    assert cursor.last_error and cursor.next_check_at is not None
    assert cursor.next_check_at > clock.now()
    assert cursor.failing_since is not None
    assert not seeds.read_one_due()  # backing off, not hammering the server

    monkeypatch.setenv("OUTREACH_SECRET_SEED_IMAP", imap_server.password)
    SeedCursor.objects.update(next_check_at=None)
    assert seeds.read_one_due()
    cursor.refresh_from_db()
    assert cursor.last_error == "" and cursor.failing_since is None


def test_a_spam_folder_no_longer_configured_is_forgotten(junk: MailBoxUnencrypted) -> None:
    assert read_all() == 1
    pool = PoolSettings.load()
    seed = pool.seed_addresses[1]
    pool.seed_addresses = [pool.seed_addresses[0], {**seed, "spam_folders": ["Spam"]}]
    pool.save()
    SeedCursor.objects.update(next_check_at=None)

    assert seeds.read_one_due()  # the new folder (missing on the server: noted, not stuck)
    assert list(SeedCursor.objects.values_list("folder", flat=True)) == ["Spam"]


def test_only_seeds_with_imap_access_are_checked(db: None) -> None:
    pool = PoolSettings.load()
    pool.seed_addresses = ["seed@inbox-seeds.example.net"]
    pool.save()

    assert seeds.read_one_due() is False
    assert not SeedCursor.objects.exists()
