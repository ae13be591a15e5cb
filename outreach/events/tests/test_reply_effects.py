"""What a reply's label does: unsubscribe requests suppress and stop, an absence postpones the
sequence, interest marks the lead and alerts, a refusal stops (and may suppress the company),
and the operator's relabel is audited and takes effect."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest

from outreach.alerts.models import Alert
from outreach.campaigns.models import Enrollment, Lead, Message, Suppression
from outreach.campaigns.suppression import is_suppressed
from outreach.events import inbox
from outreach.events.models import InboundMail, LabelChange
from outreach.events.replies import OOO_DEFAULT_DAYS, relabel
from outreach.events.tests.conftest import Sent, make_sent_message
from outreach.lib import clock

pytestmark = pytest.mark.django_db

LEAD = "lead0@prospect.example.org"
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def sent() -> Iterator[Sent]:
    clock.set_now(NOW)
    sent = make_sent_message(LEAD)
    # The next step is due in two days.
    Enrollment.objects.filter(pk=sent.enrollment.pk).update(next_due_at=NOW + timedelta(days=2))
    yield sent
    clock.set_now(None)


def reply(
    sent: Sent, body: str, *, subject: str = "Re: Quick question, Lead0", **headers: str
) -> int:
    head = {
        "From": f"Lead Zero <{LEAD}>",
        "To": "rep1@send1.example.com",
        "Subject": subject,
        "Date": format_datetime(NOW),
        "Message-ID": f"<{abs(hash(body))}@prospect.example.org>",
        "In-Reply-To": sent.message.message_id_header or "",
        **headers,
    }
    raw = "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n" + body + "\r\n"
    assert sent.message.mailbox is not None
    return inbox.record_mail(raw.encode(), sent.message.mailbox, fallback_id="test")


def enrollment(sent: Sent) -> Enrollment:
    return Enrollment.objects.get(pk=sent.enrollment.pk)


def test_an_unsubscribe_request_suppresses_and_stops(sent: Sent) -> None:
    reply(sent, "Bitte tragen Sie mich aus Ihrem Verteiler aus.")

    assert InboundMail.objects.get().label == "unsubscribe_request"
    assert is_suppressed(LEAD)
    assert enrollment(sent).stop_reason == Enrollment.StopReason.UNSUBSCRIBE


def test_an_absence_postpones_the_sequence_to_the_day_after_the_return_date(sent: Sent) -> None:
    reply(
        sent,
        "I am out of the office until December 10, 2026.",
        subject="Automatic reply: Quick question",
        **{"Auto-Submitted": "auto-replied"},
    )

    kept = InboundMail.objects.get()
    assert (kept.label, kept.return_date) == ("out_of_office", date(2026, 12, 10))
    state = enrollment(sent)
    assert state.state == Enrollment.State.ACTIVE
    assert state.next_due_at == datetime(2026, 12, 11, tzinfo=UTC)


def test_an_absence_without_a_date_waits_the_default_days(sent: Sent) -> None:
    reply(sent, "I'm currently on vacation with limited access to email.")

    assert enrollment(sent).next_due_at == NOW + timedelta(days=OOO_DEFAULT_DAYS)


def test_an_absence_holds_a_follow_up_already_planned(sent: Sent) -> None:
    step = sent.message.campaign.steps.get(position=2)  # type: ignore[union-attr]
    planned = Message.objects.create(
        enrollment=sent.enrollment,
        campaign=sent.message.campaign,
        step=step,
        to_email=LEAD,
        to_domain="prospect.example.org",
        state=Message.State.SCHEDULED,
        not_before=NOW + timedelta(hours=1),
        expires_at=NOW + timedelta(hours=1, days=3),
    )

    reply(sent, "Ich bin bis zum 11.12.2026 nicht im Büro.")

    planned.refresh_from_db()
    assert planned.state == Message.State.SCHEDULED
    assert planned.not_before == datetime(2026, 12, 12, tzinfo=UTC)
    assert planned.expires_at == datetime(2026, 12, 15, tzinfo=UTC)


def test_interest_marks_the_lead_and_alerts_with_an_excerpt_and_a_link(sent: Sent) -> None:
    reply(sent, "Sounds good - can we set up a call on Thursday?\n\n> our pitch")

    kept = InboundMail.objects.get()
    assert Lead.objects.get(email=LEAD).interested_at == NOW
    alert = Alert.objects.get(kind="lead_interested")
    assert "can we set up a call on Thursday?" in alert.text
    assert f"http://127.0.0.1:8000/inbox/{kept.pk}/" in alert.text and "our pitch" not in alert.text
    assert enrollment(sent).stop_reason == Enrollment.StopReason.REPLY


def test_a_refusal_stops_and_suppresses_the_company_when_the_campaign_says_so(
    sent: Sent,
) -> None:
    campaign = sent.message.campaign
    assert campaign is not None
    campaign.suppress_company_on_refusal = True
    campaign.save()

    reply(sent, "Thanks, but we're not interested.")

    assert enrollment(sent).state == Enrollment.State.STOPPED
    entry = Suppression.objects.get(kind=Suppression.Kind.DOMAIN)
    assert entry.value == "prospect.example.org"
    assert is_suppressed("someone.else@prospect.example.org")


def test_a_refusal_suppresses_nobody_else_without_the_campaign_setting(sent: Sent) -> None:
    reply(sent, "Thanks, but we're not interested.")

    assert enrollment(sent).state == Enrollment.State.STOPPED
    assert not Suppression.objects.exists()


def test_the_operator_relabels_with_an_audit_and_the_new_label_takes_effect(sent: Sent) -> None:
    reply(sent, "Hmm. What is this about?")
    kept = InboundMail.objects.get()
    assert kept.label == "other" and not is_suppressed(LEAD)

    assert relabel(kept, "unsubscribe_request", actor="ops@example.com")
    assert not relabel(kept, "unsubscribe_request", actor="ops@example.com")

    kept.refresh_from_db()
    assert (kept.label, kept.labeled_by) == ("unsubscribe_request", "ops@example.com")
    change = LabelChange.objects.get()
    assert (change.from_label, change.to_label, change.actor) == (
        "other",
        "unsubscribe_request",
        "ops@example.com",
    )
    assert is_suppressed(LEAD)
    with pytest.raises(ValueError, match="unknown label"):
        relabel(kept, "maybe", actor="ops@example.com")
