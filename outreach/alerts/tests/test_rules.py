"""Health rules applied to the pool: evidence in, transitions in the audit log, alerts out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from outreach.alerts import rules
from outreach.alerts.models import Alert
from outreach.alerts.tests.conftest import Pool, record, send
from outreach.lib import clock
from outreach.pool.models import Domain, Mailbox, PoolSettings, StateChange
from outreach.pool.states import transition_mailbox
from outreach.sending.models import SendAttempt

pytestmark = pytest.mark.django_db


def _state(mailbox: Mailbox) -> str:
    mailbox.refresh_from_db()
    return mailbox.state


def _alerts(kind: str) -> list[Alert]:
    return list(Alert.objects.filter(kind=kind).order_by("id"))


def test_it_pauses_a_mailbox_on_its_first_complaint_with_the_figures(pool: Pool) -> None:
    mailbox = pool.mailboxes[0]
    messages = send(mailbox, 30, campaign=pool.campaign)

    record(messages[3], "complained")

    assert _state(mailbox) == Mailbox.State.PAUSED
    change = StateChange.objects.get(mailbox=mailbox)
    assert (change.from_state, change.to_state, change.actor) == (
        "active",
        "paused",
        "rule:complaint",
    )
    assert change.figures["complained"] == 1
    assert change.figures["sent"] == 30
    [alert] = _alerts("mailbox_paused")
    assert alert.severity == "critical"
    assert mailbox.address in alert.text and "complaint" in alert.text
    # The other mailboxes go on.
    assert _state(pool.mailboxes[1]) == Mailbox.State.ACTIVE


def test_a_complaint_pauses_a_mailbox_cooling_down_and_outranks_a_block(pool: Pool) -> None:
    # Any complaint needs a person: a mailbox in cooldown for a block is paused by the
    # complaint that arrives meanwhile, and a complaint beside a block pauses, not cools down.
    mailbox, other = pool.mailboxes[0], pool.mailboxes[1]
    messages = send(mailbox, 5)
    record(messages[0], "blocked", source="smtp")
    assert _state(mailbox) == Mailbox.State.COOLDOWN

    record(messages[1], "complained")

    assert _state(mailbox) == Mailbox.State.PAUSED
    change = StateChange.objects.filter(mailbox=mailbox).latest("id")
    assert (change.from_state, change.actor) == ("cooldown", "rule:complaint")
    # Only a complaint moves a mailbox cooling down: its block alone keeps it there.
    others = send(other, 5)
    record(others[0], "blocked", source="smtp")
    rules.periodic_pass()
    assert _state(other) == Mailbox.State.COOLDOWN


def test_it_warns_above_three_percent_bounces_once_and_pauses_above_five(pool: Pool) -> None:
    mailbox = pool.mailboxes[0]
    messages = send(mailbox, 200, campaign=pool.campaign)

    for message in messages[:6]:
        record(message, "bounced", bounce_type="hard")  # 3.0%: no evidence of more
    record(messages[6], "bounced", bounce_type="soft")  # soft bounces do not count
    assert _alerts("bounce_warning") == []

    record(messages[7], "bounced", bounce_type="hard")  # 7 of 200: above 3% on the evidence
    assert _state(mailbox) == Mailbox.State.ACTIVE
    [warning] = _alerts("bounce_warning")
    assert "7 of 200 attempts" in warning.text

    rules.evaluate_pool()  # the periodic pass sees the same figures: no second warning
    assert len(_alerts("bounce_warning")) == 1

    record(messages[8], "bounced", bounce_type="hard")  # 8 of 200: above 5% on the evidence
    assert _state(mailbox) == Mailbox.State.PAUSED
    change = StateChange.objects.get(mailbox=mailbox)
    assert change.actor == "rule:bounce_rate"
    assert change.figures["bounced_hard"] == 8 and change.figures["attempts"] == 200
    assert len(_alerts("mailbox_paused")) == 1


def test_it_waits_for_twenty_sends_before_judging_bounce_rates(pool: Pool) -> None:
    mailbox = pool.mailboxes[0]
    messages = send(mailbox, 10)
    for message in messages[:3]:
        record(message, "bounced", bounce_type="hard")
    assert _state(mailbox) == Mailbox.State.ACTIVE
    send(mailbox, 10)  # 3 of 20: 15%
    rules.evaluate_pool()
    assert _state(mailbox) == Mailbox.State.PAUSED


def test_it_cools_a_blocked_mailbox_down_for_14_days_then_rewarms_it(pool: Pool) -> None:
    mailbox = pool.mailboxes[0]
    messages = send(mailbox, 5)
    blocked_at = clock.now()

    record(messages[0], "blocked", source="smtp")

    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.COOLDOWN
    assert mailbox.cooldown_until == blocked_at + timedelta(days=14)
    assert len(_alerts("mailbox_cooldown")) == 1

    clock.advance(timedelta(days=13, hours=23))
    rules.periodic_pass()
    assert _state(mailbox) == Mailbox.State.COOLDOWN

    clock.advance(timedelta(hours=1))
    rules.periodic_pass()
    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.WARMING
    reentry = PoolSettings.load().warmup.reentry_day
    assert mailbox.warmup_start_day == reentry
    assert mailbox.cap_today(PoolSettings.load()) == 12  # day 8 of the warm-up schedule
    assert len(_alerts("mailbox_rewarming")) == 1
    # The old block does not send it straight back into cooldown.
    rules.periodic_pass()
    assert _state(mailbox) == Mailbox.State.WARMING


def test_it_does_not_undo_a_manual_resume_with_the_same_old_evidence(pool: Pool) -> None:
    mailbox = pool.mailboxes[0]
    messages = send(mailbox, 25)
    record(messages[0], "complained")
    assert _state(mailbox) == Mailbox.State.PAUSED

    clock.advance(timedelta(hours=2))
    transition_mailbox(mailbox, "active", reason="checked: a forwarded test", actor="user:ops")
    rules.periodic_pass()
    assert _state(mailbox) == Mailbox.State.ACTIVE

    # New evidence after the resume does count.
    clock.advance(timedelta(hours=1))
    later = send(mailbox, 1)
    record(later[0], "complained")
    assert _state(mailbox) == Mailbox.State.PAUSED
    change = StateChange.objects.filter(mailbox=mailbox).first()
    assert change is not None and change.figures["complained"] == 1
    assert "evidence_since" in change.figures


def test_it_pauses_after_an_authentication_failure_or_a_streak_of_failures(pool: Pool) -> None:
    first, second = pool.mailboxes[0], pool.mailboxes[1]
    send(first, 1, outcome=SendAttempt.Outcome.AUTH_FAILED)
    assert _state(first) == Mailbox.State.PAUSED
    assert StateChange.objects.get(mailbox=first).actor == "rule:auth_failed"

    send(second, 9, outcome=SendAttempt.Outcome.TRANSIENT)
    assert _state(second) == Mailbox.State.ACTIVE
    send(second, 1, outcome=SendAttempt.Outcome.TRANSIENT)
    assert _state(second) == Mailbox.State.PAUSED


def test_it_cools_a_domain_down_when_its_mailboxes_keep_getting_paused(pool: Pool) -> None:
    first, second = pool.mailboxes[0], pool.mailboxes[1]  # both on send1
    record(send(first, 1)[0], "complained")
    domain = first.domain
    domain.refresh_from_db()
    assert domain.state == Domain.State.ACTIVE

    record(send(second, 1)[0], "complained")
    domain.refresh_from_db()
    assert domain.state == Domain.State.COOLDOWN
    assert domain.cooldown_until == clock.now() + timedelta(days=14)
    change = StateChange.objects.get(domain=domain, mailbox__isnull=True)
    assert change.figures["mailbox_pauses"] == 2
    assert len(_alerts("domain_cooldown")) == 1

    clock.advance(timedelta(days=14))
    rules.periodic_pass()
    domain.refresh_from_db()
    assert domain.state == Domain.State.ACTIVE


def test_it_does_not_cool_a_domain_down_for_credential_pauses(pool: Pool) -> None:
    first, second = pool.mailboxes[0], pool.mailboxes[1]
    send(first, 1, outcome=SendAttempt.Outcome.AUTH_FAILED)
    send(second, 1, outcome=SendAttempt.Outcome.AUTH_FAILED)
    assert (_state(first), _state(second)) == ("paused", "paused")
    first.domain.refresh_from_db()
    assert first.domain.state == Domain.State.ACTIVE


def test_it_alerts_once_when_a_domain_nears_its_cap_not_once_per_message(pool: Pool) -> None:
    from outreach.scheduler.models import DailyCounter

    mailbox = pool.mailboxes[0]
    domain = mailbox.domain
    domain.daily_cap = 20
    domain.save()
    day = clock.today()
    counter = DailyCounter.objects.create(scope="domain", key=str(domain.pk), day=day, used=0)
    for used in range(1, 21):
        counter.used = used
        counter.save()
        send(mailbox, 1)
        rules.check_caps()

    near = _alerts("domain_cap_near")
    reached = _alerts("domain_cap_reached")
    assert len(near) == 1 and "18/20" in near[0].text
    assert len(reached) == 1 and "20/20" in reached[0].text

    clock.advance(timedelta(hours=3))  # past the quiet period: still once a day
    send(mailbox, 1)
    assert len(_alerts("domain_cap_reached")) == 1


def test_it_alerts_when_the_global_cap_is_reached(pool: Pool) -> None:
    from outreach.scheduler.models import DailyCounter

    DailyCounter.objects.create(scope="global", key="*", day=clock.today(), used=1500)
    rules.check_caps()
    rules.check_caps()
    [alert] = _alerts("global_cap_reached")
    assert "1500/1500" in alert.text


def test_it_alerts_on_warmup_graduation(pool: Pool) -> None:
    mailbox = pool.mailboxes[0]
    Mailbox.objects.filter(pk=mailbox.pk).update(state=Mailbox.State.WARMING)
    mailbox.refresh_from_db()
    transition_mailbox(mailbox, "active", reason="reached 40/day cleanly", actor="rule:warmup")
    [alert] = _alerts("warmup_graduated")
    assert alert.severity == "info" and mailbox.address in alert.text


def test_it_alerts_when_webhooks_fall_silent_while_sending(pool: Pool, settings: object) -> None:
    mailbox = pool.mailboxes[0]
    messages = send(mailbox, 10)
    record(messages[0], "delivered")
    clock.advance(timedelta(minutes=30))
    assert not rules.check_webhooks_silent()

    clock.advance(timedelta(minutes=45))  # sends 75 min old, last webhook 75 min ago
    assert rules.check_webhooks_silent()
    [alert] = _alerts("webhooks_silent")
    assert alert.severity == "critical" and "10 messages" in alert.text
    assert not rules.check_webhooks_silent()  # quiet period


def test_it_does_not_call_webhooks_silent_when_events_keep_arriving(pool: Pool) -> None:
    mailbox = pool.mailboxes[0]
    messages = send(mailbox, 10)
    clock.advance(timedelta(minutes=70))
    record(messages[0], "delivered")
    assert not rules.check_webhooks_silent()


def test_it_alerts_once_when_webhook_requests_are_refused(pool: Pool) -> None:
    from outreach.events.models import DeadLetter

    assert not rules.check_refused_webhooks()
    old = DeadLetter.objects.create(
        endpoint="/webhooks/postmark", error="bad auth", status_code=403
    )
    DeadLetter.objects.filter(pk=old.pk).update(received_at=clock.now() - timedelta(hours=2))
    assert not rules.check_refused_webhooks()  # only the last silence period counts

    for _ in range(3):
        DeadLetter.objects.create(endpoint="/webhooks/ses", error="bad signature", status_code=403)
    DeadLetter.objects.create(endpoint="/webhooks/ses", error="no JSON", status_code=400)
    replayed = DeadLetter.objects.create(endpoint="/webhooks/mailgun", error="x", status_code=400)
    DeadLetter.objects.filter(pk=replayed.pk).update(replayed_at=clock.now())

    assert rules.check_refused_webhooks()
    [alert] = _alerts("webhooks_refused")
    assert "4 provider webhook request(s) refused" in alert.text
    assert "/webhooks/ses: 3 × 403" in alert.text and "/webhooks/ses: 1 × 400" in alert.text
    assert "mailgun" not in alert.text
    assert not rules.check_refused_webhooks()  # quiet period


def test_it_deletes_dead_letters_past_their_retention(pool: Pool, settings: object) -> None:
    from outreach.events.models import DeadLetter

    settings.OUTREACH_DEAD_LETTER_DAYS = 30  # type: ignore[attr-defined]
    kept = DeadLetter.objects.create(endpoint="/webhooks/ses", error="x", status_code=400)
    gone = DeadLetter.objects.create(endpoint="/webhooks/ses", error="y", status_code=400)
    DeadLetter.objects.filter(pk=kept.pk).update(received_at=clock.now() - timedelta(days=29))
    DeadLetter.objects.filter(pk=gone.pk).update(received_at=clock.now() - timedelta(days=31))

    rules.periodic_pass()

    assert list(DeadLetter.objects.values_list("pk", flat=True)) == [kept.pk]


def test_it_alerts_when_an_imap_folder_cannot_be_read_for_a_while(pool: Pool) -> None:
    from outreach.events.models import InboxCursor, SeedCursor

    settings_row = PoolSettings.load()
    settings_row.seed_addresses = [
        {"address": "seed@seeds.example.net", "imap_host": "imap.example.net"}
    ]
    settings_row.save()
    mailbox, retired = pool.mailboxes[0], pool.mailboxes[1]
    Mailbox.objects.filter(pk=retired.pk).update(state=Mailbox.State.RETIRED)
    now = clock.now()
    long_ago, just_now = now - timedelta(minutes=40), now - timedelta(minutes=5)
    InboxCursor.objects.create(mailbox=mailbox, folder="INBOX")  # read fine
    InboxCursor.objects.create(  # failing, but only since a moment: a blip so far
        mailbox=mailbox, folder="Sent", last_error="timeout", failing_since=just_now
    )
    InboxCursor.objects.create(
        mailbox=mailbox,
        folder="Archive",
        last_error="LoginError: authentication failed",
        failing_since=long_ago,
    )
    InboxCursor.objects.create(  # a retired mailbox is no longer anyone's concern
        mailbox=retired, folder="INBOX", last_error="x", failing_since=long_ago
    )
    SeedCursor.objects.create(
        address="seed@seeds.example.net", folder="Junk", last_error="x", failing_since=long_ago
    )
    SeedCursor.objects.create(  # a seed no longer configured
        address="gone@seeds.example.net", folder="Junk", last_error="x", failing_since=long_ago
    )

    assert rules.check_imap_failing() == 2
    inbox, seed = _alerts("imap_failing")
    assert inbox.severity == "critical" and f"{mailbox.address} Archive" in inbox.text
    assert "authentication failed" in inbox.text
    assert seed.severity == "warning" and "seed@seeds.example.net Junk" in seed.text
    assert rules.check_imap_failing() == 0  # quiet period
