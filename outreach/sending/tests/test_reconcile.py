"""Reconciliation of the messages in doubt: found → sent, not found after the grace → routed
again, and nothing concluded from a lookup that failed.

Against a real dovecot holding a Sent folder, and Mailgun's and Postmark's search APIs faked
at HTTP with the payloads they document. The two wrong outcomes (marking sent what was not,
resending what was) must never happen, whatever fails.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from imap_tools import MailBoxUnencrypted

from outreach.campaigns.models import Message
from outreach.events.tests import dovecot
from outreach.lib import clock
from outreach.pool.models import Mailbox, ProviderAccount, StateChange
from outreach.providers.tests.fakehttp import fake_http
from outreach.scheduler.recovery import recover_leases
from outreach.scheduler.routing_pass import claim_due
from outreach.scheduler.tests.conftest import NOON, schedule
from outreach.sending import reconcile
from outreach.sending.deliver import ProviderCache, begin_call, load_taken
from outreach.sending.models import SendAttempt
from outreach.sending.take import take_batch
from outreach.testing import make_campaign, make_pool, make_provider

pytestmark = pytest.mark.django_db
ADDRESS = "rep1@send1.example.com"  # make_pool's first mailbox, and a dovecot account
NO_PACING = {"pacing_gap_seconds": 0, "pacing_jitter_seconds": 0}
# The killed worker's calls began at NOON; its lease ran out five minutes later.
IN_DOUBT_AT = NOON + timedelta(minutes=6)
BEFORE_GRACE = NOON + timedelta(minutes=20)
AFTER_GRACE = NOON + timedelta(minutes=31)


@pytest.fixture(autouse=True)
def _settings(settings: Any, tmp_path: Path) -> None:
    clock.set_now(NOON)
    settings.OUTREACH_OUTBOX_DIR = str(tmp_path / "outbox")
    settings.OUTREACH_BASE_URL = "https://outreach.example.com"
    settings.OUTREACH_UNKNOWN_RESEND_AFTER_MINUTES = 30
    settings.OUTREACH_RECONCILE_EVERY_MINUTES = 5


@pytest.fixture(scope="module")
def imap_server() -> Iterator[dovecot.ImapServer]:
    reason = dovecot.available()
    if reason:
        pytest.skip(reason)
    server = dovecot.start([ADDRESS])
    yield server
    server.stop()


@pytest.fixture
def sent_folder(imap_server: dovecot.ImapServer) -> Iterator[MailBoxUnencrypted]:
    """The mailbox's "Sent" folder, empty at the start of each test."""
    client = MailBoxUnencrypted(imap_server.host, imap_server.port)
    client.login(ADDRESS, imap_server.password)
    if not client.folder.exists("Sent"):
        client.folder.create("Sent")
    client.folder.set("Sent")
    client.delete(client.uids())
    yield client
    client.logout()


def in_doubt(count: int, provider: ProviderAccount | None = None) -> list[Message]:
    """``count`` messages whose worker was killed after their calls began: ``unknown``."""
    make_pool(1, 1, provider=provider or make_provider(), limits=NO_PACING)
    schedule(make_campaign(), count)
    claim_due(NOON)
    taken = take_batch("killed-worker", NOON, count)
    for message, _ in load_taken(taken):
        assert begin_call(message, ProviderCache())
    assert recover_leases(IN_DOUBT_AT).unknown == count
    return list(Message.objects.order_by("pk"))


def with_imap(server: dovecot.ImapServer, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    monkeypatch.setenv("OUTREACH_SECRET_REP1_IMAP_PASSWORD", server.password)
    Mailbox.objects.filter(address=ADDRESS).update(
        settings={
            "imap_host": server.host,
            "imap_port": server.port,
            "imap_security": "plain",
            "imap_sent_folder": "Sent",
            **extra,
        },
        secrets={"imap_password": "env:OUTREACH_SECRET_REP1_IMAP_PASSWORD"},
    )


def copy_of(message: Message) -> bytes:
    """What the provider files under Sent for a message it took."""
    return (
        f"From: Rep 1 <{ADDRESS}>\r\nTo: {message.to_email}\r\nSubject: Quick question\r\n"
        f"Date: {format_datetime(NOON)}\r\nMessage-ID: {message.message_id_header}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello.\r\n"
    ).encode()


def states() -> dict[int, str]:
    return dict(Message.objects.values_list("pk", "state"))


# --- IMAP ----------------------------------------------------------------------------------


def test_it_finds_a_message_in_the_sent_folder_and_reroutes_one_that_is_not_there(
    imap_server: dovecot.ImapServer,
    sent_folder: MailBoxUnencrypted,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    went_out, lost = in_doubt(2)
    with_imap(imap_server, monkeypatch)
    sent_folder.append(copy_of(went_out), "Sent")

    report = reconcile.reconcile_due(BEFORE_GRACE)

    assert (report.sent, report.resent, report.waiting) == (1, 0, 1)
    assert states() == {went_out.pk: "sent", lost.pk: "unknown"}
    attempt = SendAttempt.objects.get()
    assert attempt.message_id == went_out.pk and attempt.outcome == "sent"
    lost.refresh_from_db()
    assert "not found yet" in lost.doubt and "12:30" in lost.doubt

    # Within the reconciliation interval nothing is looked up again; after the grace the
    # message that never arrived goes back to routing.
    assert reconcile.reconcile_due(BEFORE_GRACE + timedelta(minutes=1)).looked_up == 0
    assert reconcile.reconcile_due(AFTER_GRACE).resent == 1

    lost.refresh_from_db()
    assert lost.state == "scheduled" and lost.mailbox_id is None
    assert lost.message_id_header  # kept: a receiver can recognize a repeat
    audit = {c.to_state: c for c in StateChange.objects.filter(actor="system:reconcile")}
    assert set(audit) == {"sent", "scheduled"}
    assert audit["sent"].figures["message"] == went_out.pk
    assert "Sent folder" in audit["sent"].reason
    assert audit["scheduled"].figures["message"] == lost.pk


def test_it_concludes_nothing_while_the_imap_server_is_down(
    imap_server: dovecot.ImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (message,) = in_doubt(1)
    with_imap(imap_server, monkeypatch)
    Mailbox.objects.update(settings={**Mailbox.objects.get().settings, "imap_port": 1})

    report = reconcile.reconcile_due(AFTER_GRACE + timedelta(hours=5))

    assert (report.sent, report.resent, report.waiting) == (0, 0, 1)
    message.refresh_from_db()
    assert message.state == "unknown"
    assert message.doubt.startswith("IMAP lookup failed")
    assert not StateChange.objects.filter(actor="system:reconcile").exists()


def test_it_concludes_nothing_without_a_sent_folder(
    imap_server: dovecot.ImapServer,
    sent_folder: MailBoxUnencrypted,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (message,) = in_doubt(1)
    with_imap(imap_server, monkeypatch, imap_sent_folder="Sent Items")

    reconcile.reconcile_due(AFTER_GRACE)

    message.refresh_from_db()
    assert message.state == "unknown"
    assert message.doubt == "no IMAP folder 'Sent Items'"


def test_it_searches_a_large_sent_folder_by_header_without_downloading_it(
    imap_server: dovecot.ImapServer,
    sent_folder: MailBoxUnencrypted,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (message,) = in_doubt(1)
    with_imap(imap_server, monkeypatch)
    # Thousands of sent mails, written straight into the folder's maildir (appending them
    # one by one over IMAP would take most of the test's time); dovecot indexes them when
    # the folder is next selected.
    maildir = imap_server.root / "home" / ADDRESS / "Maildir" / ".Sent" / "cur"
    nobody = pwd.getpwnam("nobody")
    others = Message(to_email="someone@elsewhere.example", message_id_header="")
    for i in range(2000):
        others.message_id_header = f"<other-{i}@send1.example.com>"
        path = maildir / f"1772625600.M{i}P1.outreach-test:2,S"
        path.write_bytes(copy_of(others))
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    sent_folder.append(copy_of(message), "Sent")
    sent_folder.folder.set("Sent")
    assert len(sent_folder.uids()) == 2001

    def no_download(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Sent folder was fetched")

    monkeypatch.setattr(MailBoxUnencrypted, "fetch", no_download)
    assert reconcile.reconcile_due(BEFORE_GRACE).sent == 1


# --- provider APIs -------------------------------------------------------------------------


def mailgun_account(monkeypatch: pytest.MonkeyPatch) -> ProviderAccount:
    monkeypatch.setenv("OUTREACH_SECRET_MAILGUN_API_KEY", "key-example")
    return ProviderAccount.objects.create(
        name="mailgun-main",
        kind=ProviderAccount.Kind.MAILGUN,
        settings={"sender_domain": "mg.send1.example.com"},
        secrets={"api_key": "env:OUTREACH_SECRET_MAILGUN_API_KEY"},
    )


def mailgun_events(message: Message, *events: str) -> dict[str, Any]:
    """A page of Mailgun's events API (GET /v3/<domain>/events), as documented."""
    return {
        "items": [
            {
                "event": event,
                "id": f"czsjqFATSlC3QtAK-C80nw-{i}",
                "timestamp": 1772452800.0 + i,
                "recipient": message.to_email,
                "message": {
                    "headers": {
                        "message-id": (message.message_id_header or "").strip("<>"),
                        "to": message.to_email,
                        "from": ADDRESS,
                        "subject": "Quick question",
                    }
                },
                "user-variables": {"outreach_message": str(message.pk)},
            }
            for i, event in enumerate(events)
        ],
        "paging": {
            "next": "https://api.mailgun.net/v3/mg.send1.example.com/events/W3siYSI6IGZhbHNlfQ==",
            "previous": "https://api.mailgun.net/v3/mg.send1.example.com/events/Lkawm93Jdm==",
        },
    }


def test_it_asks_mailgun_for_the_message_id(monkeypatch: pytest.MonkeyPatch) -> None:
    went_out, lost, refused = in_doubt(3, mailgun_account(monkeypatch))
    with fake_http() as http:
        http.answer(200, mailgun_events(went_out, "accepted", "delivered"))
        http.answer(200, {"items": [], "paging": {}})
        http.answer(200, mailgun_events(refused, "rejected"))
        report = reconcile.reconcile_due(AFTER_GRACE)

    assert states() == {went_out.pk: "sent", lost.pk: "scheduled", refused.pk: "scheduled"}
    assert report.sent == 1 and report.resent == 2
    request = http.requests[0]
    assert request["method"].upper() == "GET"
    assert request["url"] == "https://api.mailgun.net/v3/mg.send1.example.com/events"
    assert request["params"]["message-id"] == (went_out.message_id_header or "").strip("<>")
    assert request["auth"] == ("api", "key-example")


def test_it_never_concludes_from_a_mailgun_5xx(monkeypatch: pytest.MonkeyPatch) -> None:
    (message,) = in_doubt(1, mailgun_account(monkeypatch))
    with fake_http() as http:
        http.answer(503, {"message": "Service Unavailable"})
        report = reconcile.reconcile_due(AFTER_GRACE + timedelta(days=1))

    assert report.resent == 0 and report.sent == 0
    message.refresh_from_db()
    assert message.state == "unknown" and "mailgun lookup failed" in message.doubt


def postmark_search(message: Message) -> dict[str, Any]:
    """Postmark's outbound message search (GET /messages/outbound), as documented."""
    return {
        "TotalCount": 1,
        "Messages": [
            {
                "Tag": "",
                "MessageID": "0ac29aee-e1cd-480d-b08d-4f48548ff48d",
                "MessageStream": "outbound",
                "To": [{"Email": message.to_email, "Name": None}],
                "Cc": [],
                "Bcc": [],
                "Recipients": [message.to_email],
                "ReceivedAt": "2026-03-04T07:00:01.7733415-05:00",
                "From": f'"Rep 1" <{ADDRESS}>',
                "Subject": "Quick question",
                "Attachments": [],
                "Status": "Sent",
                "TrackOpens": False,
                "TrackLinks": "None",
                "Metadata": {"outreach_message": str(message.pk)},
                "Sandboxed": False,
            }
        ],
    }


def test_it_searches_postmark_by_the_message_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_SECRET_POSTMARK_TOKEN", "server-token")
    account = ProviderAccount.objects.create(
        name="postmark-main",
        kind=ProviderAccount.Kind.POSTMARK,
        settings={"message_stream": "cold"},
        secrets={"server_token": "env:OUTREACH_SECRET_POSTMARK_TOKEN"},
    )
    went_out, lost = in_doubt(2, account)
    with fake_http() as http:
        http.answer(200, postmark_search(went_out))
        http.answer(200, {"TotalCount": 0, "Messages": []})
        http.answer(500, {"ErrorCode": 0, "Message": "Internal Server Error"})
        reconcile.reconcile_due(BEFORE_GRACE)
        reconcile.reconcile_due(AFTER_GRACE)  # the second lookup of `lost` fails

    assert states() == {went_out.pk: "sent", lost.pk: "unknown"}
    request = http.requests[0]
    assert request["url"] == "https://api.postmarkapp.com/messages/outbound"
    assert request["params"]["metadata_outreach_message"] == str(went_out.pk)
    assert request["params"]["messagestream"] == "cold"
    assert request["headers"]["X-Postmark-Server-Token"] == "server-token"


def test_it_leaves_ses_messages_in_doubt(monkeypatch: pytest.MonkeyPatch) -> None:
    account = ProviderAccount.objects.create(
        name="ses-main", kind=ProviderAccount.Kind.SES, settings={"region": "eu-west-1"}
    )
    (message,) = in_doubt(1, account)

    reconcile.reconcile_due(AFTER_GRACE + timedelta(days=1))

    message.refresh_from_db()
    assert message.state == "unknown"
    assert message.doubt.startswith("ses keeps no record to search")


# --- the setting, and a reconciliation that dies ---------------------------------------------


def test_it_never_resends_when_resending_is_off(settings: Any) -> None:
    settings.OUTREACH_UNKNOWN_RESEND_AFTER_MINUTES = 0
    (message,) = in_doubt(1)  # sandbox: nothing in its outbox

    reconcile.reconcile_due(AFTER_GRACE + timedelta(days=1))

    message.refresh_from_db()
    assert message.state == "unknown" and "resending is off" in message.doubt


def test_a_reconciliation_killed_midway_leaves_the_message_in_doubt_then_settles_it_once(
    imap_server: dovecot.ImapServer,
    sent_folder: MailBoxUnencrypted,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (message,) = in_doubt(1)
    with_imap(imap_server, monkeypatch)
    sent_folder.append(copy_of(message), "Sent")

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("killed")  # the process dies after the message was made its own

    with monkeypatch.context() as m:
        m.setattr(reconcile, "finish_batch", killed)
        with pytest.raises(SystemExit):
            reconcile.reconcile_due(BEFORE_GRACE)
    assert states() == {message.pk: "unknown"}

    assert reconcile.reconcile_due(BEFORE_GRACE).sent == 1
    assert reconcile.reconcile_due(AFTER_GRACE).looked_up == 0
    assert states() == {message.pk: "sent"}
    assert SendAttempt.objects.count() == 1
    assert StateChange.objects.filter(actor="system:reconcile").count() == 1
