"""No lead stuck: whatever state a message ends in, its enrollment has a next step or an end.

Every message is sent through the real engine to a real SMTP server scripted to answer as a
receiver would (accept, refuse the address, block the sender, refuse for good, defer for
ever); the control plane's pass then runs as it does in production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from outreach.campaigns.models import Enrollment, Message
from outreach.campaigns.suppression import suppress
from outreach.dashboard.actions import resolve_unknown
from outreach.lib import clock
from outreach.pool.models import Mailbox
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.scheduler.engine import run_pass
from outreach.scheduler.planning import stranded_enrollments
from outreach.sending.engine import send_due
from outreach.sending.tests.helpers import claimed_campaign_messages, smtp_account
from outreach.testing import make_pool

pytestmark = pytest.mark.django_db

# A Monday morning: inside every window, far from midnight.
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
BLOCK = "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"


@pytest.fixture(autouse=True)
def _pinned_clock(settings: object) -> None:
    settings.OUTREACH_BASE_URL = "https://outreach.example.com"  # type: ignore[attr-defined]
    clock.set_now(T0)


def _pass() -> None:
    """The control plane's pass, then whatever it claimed is sent."""
    run_pass(clock.now(), health=False)


def _crash_mid_call(message: Message) -> None:
    # The worker died while the provider call was in flight: its lease runs out.
    Message.objects.filter(pk=message.pk).update(
        state=Message.State.SENDING,
        call_started_at=clock.now() - timedelta(minutes=1),
        lease_expires_at=clock.now() - timedelta(seconds=1),
    )


def _no_answer(server: SmtpTestServer, message: Message) -> None:
    pass


def _blocked_on_last_attempt(server: SmtpTestServer, message: Message) -> None:
    server.handler.data_faults.append(BLOCK)
    Message.objects.filter(pk=message.pk).update(attempts=5)  # the engine allows 6


@dataclass(frozen=True)
class Case:
    # How the receiver answers the message's first send.
    receiver: Callable[[SmtpTestServer, Message], object]
    # The enrollment at the end: (state, stop reason, a next step planned).
    expected: tuple[str, str, bool]
    # The worker dies during the call; the operator then decides ("sent", "failed", "resend").
    decision: str = ""


CASES = {
    "sent": Case(_no_answer, ("active", "", True)),
    "hard bounce": Case(
        lambda server, m: server.handler.rcpt_faults.update({m.to_email: "550 5.1.1 No such user"}),
        ("stopped", "bounce", False),
    ),
    "refused for good": Case(
        lambda server, m: server.handler.data_faults.append("552 5.3.4 Message size exceeds limit"),
        ("stopped", "send_failed", False),
    ),
    "retries exhausted": Case(
        lambda server, m: server.handler.data_faults.extend(["451 4.3.0 Try later"] * 20),
        ("stopped", "send_failed", False),
    ),
    "blocked on its last attempt": Case(
        _blocked_on_last_attempt, ("stopped", "send_failed", False)
    ),
    "cancelled (suppressed after the claim)": Case(
        lambda server, m: suppress(m.to_email, "unsubscribe"), ("stopped", "suppressed", False)
    ),
    "unknown, then given up": Case(_no_answer, ("stopped", "send_failed", False), "failed"),
    "unknown, then found sent": Case(_no_answer, ("active", "", True), "sent"),
    "unknown, then resent": Case(_no_answer, ("active", "", True), "resend"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_it_leaves_no_enrollment_active_with_nothing_planned(
    smtp_server: SmtpTestServer, ca_file: Path, name: str
) -> None:
    case = CASES[name]
    account = smtp_account("relay", smtp_server.port, ca_file)
    (message,) = claimed_campaign_messages(1, provider=account, steps=2)
    case.receiver(smtp_server, message)
    if case.decision:
        _crash_mid_call(message)
    else:
        send_due()

    for _ in range(8):  # retries back off for hours: two days of passes settle everything
        _pass()
        if Message.objects.filter(pk=message.pk, state=Message.State.UNKNOWN).exists():
            # Until the operator decides, the message waits for them: that is a plan.
            assert not stranded_enrollments().exists()
            resolve_unknown(message.pk, case.decision, reason="read the relay's log", actor="t")
        clock.advance(timedelta(hours=6))

    assert not stranded_enrollments().exists()
    enrollment = Enrollment.objects.get(pk=message.enrollment_id or 0)
    state, reason, planned = case.expected
    assert (enrollment.state, enrollment.stop_reason) == (state, reason)
    if planned:
        follow_up = Message.objects.filter(enrollment=enrollment).exclude(pk=message.pk)
        assert enrollment.next_due_at is not None or follow_up.exists()


def test_it_routes_a_first_message_blocked_by_the_receiver_to_another_mailbox(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    make_pool(2, 1, provider=account)
    (message,) = claimed_campaign_messages(1, provider=account, steps=2)
    blocked_on = message.mailbox_id
    smtp_server.handler.data_faults.append(BLOCK)

    send_due()
    message.refresh_from_db()
    assert message.state == Message.State.SCHEDULED and message.mailbox_id is None
    for _ in range(3):
        _pass()
        clock.advance(timedelta(minutes=10))

    message.refresh_from_db()
    assert message.state == Message.State.SENT
    assert message.mailbox_id not in (None, blocked_on)
    enrollment = Enrollment.objects.get(pk=message.enrollment_id or 0)
    assert enrollment.state == Enrollment.State.ACTIVE
    assert enrollment.thread_mailbox_id == message.mailbox_id
    assert enrollment.next_due_at is not None
    # The block still counts against the mailbox the receiver refused.
    assert Mailbox.objects.get(pk=blocked_on or 0).state == Mailbox.State.COOLDOWN
    assert [m.rcpt_tos for m in smtp_server.received] == [[message.to_email]]


def test_it_never_moves_a_blocked_follow_up_and_ends_its_enrollment_after_the_wait(
    smtp_server: SmtpTestServer, ca_file: Path
) -> None:
    account = smtp_account("relay", smtp_server.port, ca_file)
    make_pool(2, 1, provider=account)
    (message,) = claimed_campaign_messages(1, provider=account, steps=2)
    send_due()
    thread_mailbox = Message.objects.get(pk=message.pk).mailbox_id
    smtp_server.handler.data_faults.append(BLOCK)

    for _ in range(20):  # the follow-up falls due, is blocked, waits, gives up
        _pass()
        clock.advance(timedelta(hours=12))

    follow_up = Message.objects.exclude(pk=message.pk).get()
    assert follow_up.pinned_mailbox_id == thread_mailbox
    assert follow_up.state == Message.State.CANCELLED
    assert not smtp_server.handler.data_faults  # the follow-up was tried, and blocked
    assert len(smtp_server.received) == 1  # the first message only: never sent elsewhere
    enrollment = Enrollment.objects.get(pk=message.enrollment_id or 0)
    assert (enrollment.state, enrollment.stop_reason) == ("stopped", "mailbox_unavailable")
    assert not stranded_enrollments().exists()
