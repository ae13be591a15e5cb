"""The send path's hand-written SQL (outreach/lib/sql.py) writes what the ORM statements it
replaced wrote: every column of the messages, mailboxes and enrollments of a finished batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db.models import Model
from django.db.models.signals import post_init, pre_init

from outreach.alerts.models import ProviderHealth
from outreach.campaigns.models import Campaign, Enrollment, Lead, Message, Step, Variant
from outreach.lib import bulk, clock, sql
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount
from outreach.providers.base import Outcome, SendError, SendResult
from outreach.sending.deliver import Called, load_taken
from outreach.sending.finish import finish_batch
from outreach.sending.models import ProviderCircuit, SendAttempt
from outreach.sending.signals import send_attempted
from outreach.sending.take import per_message, take_batch
from outreach.sending.tests.helpers import claimed_campaign_messages

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=7)


@pytest.fixture(autouse=True)
def _pinned_clock() -> None:
    clock.set_now(T0)


def _account() -> ProviderAccount:
    return ProviderAccount.objects.create(
        name="relay", kind=ProviderAccount.Kind.SMTP, settings={"host": "127.0.0.1"}
    )


def _finish(queue_ids: list[str]) -> list[Message]:
    """Take every due message and finish them as accepted, the i-th with ``queue_ids[i]``."""
    taken = take_batch("sql-test", clock.now(), limit=100)
    loaded = load_taken(taken)
    assert len(loaded) == len(queue_ids)
    clock.set_now(T1)
    called = [
        Called(message, message.provider_account, result=SendResult(queue_id, code="250"))
        for (message, _), queue_id in zip(loaded, queue_ids, strict=True)
        if message.provider_account is not None
    ]
    assert set(finish_batch(called)) == {Message.State.SENT}
    return [message for message, _ in loaded]


@pytest.mark.parametrize("distinct", [True, False], ids=["own-queue-ids", "one-reply"])
def test_it_records_a_sent_batch_column_by_column(distinct: bool) -> None:
    account = _account()
    messages = claimed_campaign_messages(6, provider=account, steps=2, mailboxes_per_domain=3)
    step2 = Step.objects.get(campaign_id=messages[0].campaign_id or 0, position=2)
    # Two of them are the last step (their enrollment finishes), one of those threaded already;
    # one enrollment was stopped by a reply after the claim (its message is not taken).
    last = messages[4:]
    Message.objects.filter(pk__in=[m.pk for m in last]).update(step=step2)
    Enrollment.objects.filter(pk__in=[m.enrollment_id for m in last]).update(
        last_step=1, thread_message_id="<old@send1.example.com>", thread_mailbox=last[0].mailbox
    )
    stopped, ahead = messages[3], messages[2]
    # One enrollment is further along than its step-1 message (and threaded): it stays so.
    Enrollment.objects.filter(pk=ahead.enrollment_id or 0).update(
        last_step=2, thread_message_id="<ahead@send1.example.com>", thread_mailbox=last[0].mailbox
    )
    Enrollment.objects.filter(pk=stopped.enrollment_id or 0).update(state=Enrollment.State.STOPPED)
    Mailbox.objects.update(consecutive_failures=3)
    sent = [m for m in messages if m.pk != stopped.pk]
    ids = [f"Q{i}" if distinct else "same" for i in range(len(sent))]

    _finish(ids)

    rows = {m.pk: m for m in Message.objects.filter(pk__in=[m.pk for m in messages])}
    for message, queue_id in zip(sent, ids, strict=True):
        row = rows[message.pk]
        assert (row.state, row.provider_message_id, row.sent_at) == ("sent", queue_id, T1)
        assert (row.attempts, row.last_error, row.lease_expires_at) == (1, "", None)
        assert row.updated_at == T1
        assert row.claimed_by == "sql-test"
    assert rows[stopped.pk].state == Message.State.CLAIMED
    for mailbox in Mailbox.objects.filter(pk__in={m.mailbox_id for m in sent}):
        assert (mailbox.last_sent_at, mailbox.consecutive_failures) == (T1, 0)
    enrollments = Enrollment.objects.in_bulk([m.enrollment_id for m in messages])
    for message in sent[:2]:
        # Step 1 went out: the thread is its message, the next step is due after 3 days.
        enrollment = enrollments[message.enrollment_id]
        assert enrollment.state == Enrollment.State.ACTIVE
        assert (enrollment.last_step, enrollment.next_due_at) == (1, T1 + timedelta(days=3))
        assert enrollment.thread_mailbox_id == rows[message.pk].mailbox_id
        assert enrollment.thread_message_id == rows[message.pk].message_id_header
        assert enrollment.thread_message_id
    for message in last:
        # The last step went out: finished, the thread as it was.
        enrollment = enrollments[message.enrollment_id]
        assert (enrollment.state, enrollment.last_step) == (Enrollment.State.FINISHED, 2)
        assert enrollment.next_due_at is None
        assert enrollment.thread_message_id == "<old@send1.example.com>"
    assert enrollments[stopped.enrollment_id].last_step == 0
    enrollment = enrollments[ahead.enrollment_id]
    assert (enrollment.last_step, enrollment.next_due_at) == (2, None)
    assert enrollment.thread_message_id == "<ahead@send1.example.com>"


def test_it_sends_a_message_taken_over_meanwhile_nowhere() -> None:
    account = _account()
    first, second = claimed_campaign_messages(2, provider=account)
    taken = take_batch("sql-test", clock.now(), limit=10)
    loaded = load_taken(taken)
    Message.objects.filter(pk=first.pk).update(state=Message.State.UNKNOWN)
    Message.objects.filter(pk=second.pk).update(claimed_by="recovery:other")

    finish_batch(
        [Called(m, account, result=SendResult(f"id-{m.pk}", code="250")) for m, _ in loaded]
    )

    # `unknown` of its own worker becomes `sent` (the provider did accept it); another's stays.
    assert Message.objects.get(pk=first.pk).state == Message.State.SENT
    assert Message.objects.get(pk=first.pk).provider_message_id == f"id-{first.pk}"
    assert Message.objects.get(pk=second.pk).state == Message.State.SENDING


def test_per_message_values_leave_other_rows_alone() -> None:
    account = _account()
    messages = claimed_campaign_messages(3, provider=account)
    a, b, c = (m.pk for m in messages)

    Message.objects.filter(pk__in=[a, b, c]).update(
        message_id_header=per_message(
            {a: "<a@x>", b: "<b@x>"}, "message_id_header", every_row=False
        )
    )
    Message.objects.filter(pk__in=[a, c]).update(
        subject=per_message({a: "same", c: "same"}, "subject", every_row=True)
    )

    headers = dict(Message.objects.values_list("pk", "message_id_header"))
    assert (headers[a], headers[b], headers[c]) == ("<a@x>", "<b@x>", None)
    subjects = dict(Message.objects.values_list("pk", "subject"))
    assert (subjects[a], subjects[b], subjects[c]) == ("same", "", "same")


def test_any_of_matches_exactly_the_ids_given() -> None:
    account = _account()
    messages = claimed_campaign_messages(4, provider=account)
    wanted = [messages[0].pk, messages[2].pk]

    condition, params = sql.any_of(sql.column(Message, "pk"), wanted)
    raw = sql.fetch(f"SELECT id FROM {sql.table(Message)} WHERE {condition}", params)  # noqa: S608

    assert sorted(wanted) == sorted(r[0] for r in raw)
    condition, params = sql.any_of(sql.column(Message, "pk"), [])
    assert not sql.fetch(f"SELECT id FROM {sql.table(Message)} WHERE {condition}", params)  # noqa: S608


def test_it_hands_the_listeners_the_attempts_as_stored_in_call_order(
    django_assert_num_queries: Any,
) -> None:
    account = _account()
    claimed_campaign_messages(7, provider=account, steps=2, mailboxes_per_domain=3)
    taken = take_batch("sql-test", clock.now(), limit=100)
    loaded = [message for message, _ in load_taken(taken)]
    refused = SendError("550 5.1.1 user unknown", kind=Outcome.HARD_BOUNCE, code="550")
    later = SendError("451 try later " + "x" * 5000, code="451-" + "9" * 40)
    called = [
        Called(loaded[0], account, result=SendResult("Q0", code="250", response="250 ok")),
        Called(loaded[1], account, error=refused),
        Called(loaded[2], account, error=later),
        Called(loaded[3], account, unexpected="ValueError('boom')"),
        Called(loaded[4], account, called=False, taken_back=True),
        Called(loaded[5], account, error=SendError("no login", code="x"), called=False),
        Called(loaded[6], account, result=SendResult("Q6", code="250", response="250 ok")),
    ]
    heard: list[SendAttempt] = []

    def listen(sender: Any, attempts: list[SendAttempt], **kwargs: Any) -> None:
        heard.extend(attempts)

    send_attempted.connect(listen, dispatch_uid="test.heard")
    try:
        finish_batch(called)
    finally:
        send_attempted.disconnect(dispatch_uid="test.heard")

    # One per provider call that was made, in call order, each exactly its stored row.
    assert [a.message_id for a in heard] == [loaded[i].pk for i in (0, 1, 2, 3, 6)]
    stored = SendAttempt.objects.in_bulk([a.pk for a in heard])
    assert len(stored) == 5
    fields = [f.attname for f in SendAttempt._meta.concrete_fields]
    for attempt in heard:
        row = stored[attempt.pk]
        assert [getattr(attempt, f) for f in fields] == [getattr(row, f) for f in fields]
        assert not attempt._state.adding
    assert [(a.outcome, a.code) for a in heard] == [
        ("sent", "250"),
        ("hard_bounce", "550"),
        ("transient", later.code[:32]),
        ("transient", "unknown"),
        ("sent", "250"),
    ]
    assert heard[2].response == later.message[:4000]
    assert SendAttempt.objects.count() == 5
    # The listeners read what they need without a query.
    with django_assert_num_queries(0):
        assert [a.mailbox.domain_id for a in heard] == [
            loaded[i].mailbox.domain_id  # type: ignore[union-attr]
            for i in (0, 1, 2, 3, 6)
        ]
        assert [a.message for a in heard] == [loaded[i] for i in (0, 1, 2, 3, 6)]
        assert {a.provider_account.pk for a in heard} == {account.pk}


def test_insert_returns_each_rows_own_key_across_chunks() -> None:
    account = _account()
    messages = claimed_campaign_messages(3, provider=account)
    # More rows than SQLite takes parameters in one statement: several statements there.
    fields = ["message_id", "mailbox_id", "provider_account_id", "outcome", "code", "response"]
    rows = [
        (messages[i % 3].pk, messages[i % 3].mailbox_id, account.pk, "sent", f"c{i}", "")
        for i in range(400)
    ]
    keys = bulk.insert(
        SendAttempt,
        [{**dict(zip(fields, r, strict=True)), "at": T1} for r in rows],
        returning_pks=True,
    )
    assert len(set(keys)) == 400
    stored = SendAttempt.objects.in_bulk(keys)
    assert [stored[k].code for k in keys] == [f"c{i}" for i in range(400)]
    assert [stored[k].message_id for k in keys] == [r[0] for r in rows]
    assert {stored[k].at for k in keys} == {T1}


def _fields(obj: Any) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_load_builds_the_instances_select_related_builds(
    django_assert_num_queries: Any,
) -> None:
    account = _account()
    messages = claimed_campaign_messages(4, provider=account, steps=2, mailboxes_per_domain=2)
    # A warm-up message has no enrollment: nothing to follow.
    Message.objects.filter(pk=messages[3].pk).update(enrollment=None)
    Mailbox.objects.filter(pk=messages[0].mailbox_id or 0).update(settings={"dkim_selector": "s"})
    expected = Message.objects.select_related("enrollment__lead").in_bulk([m.pk for m in messages])

    with django_assert_num_queries(1):
        loaded = sql.load(Message, [m.pk for m in messages] + [None], follow=["enrollment__lead"])

    assert sorted(loaded) == sorted(expected)
    with django_assert_num_queries(0):
        for pk, message in loaded.items():
            assert _fields(message) == _fields(expected[pk])
            assert (message._state.adding, message._state.db) == (False, "default")
            assert message.get_deferred_fields() == set()
            enrollment = message.enrollment
            if expected[pk].enrollment is None:
                assert enrollment is None
                continue
            assert enrollment is not None
            assert _fields(enrollment) == _fields(expected[pk].enrollment)
            assert _fields(enrollment.lead) == _fields(expected[pk].enrollment.lead)  # type: ignore[union-attr]
    boxes = sql.load(Mailbox, {m.mailbox_id for m in messages}, follow=["domain"])
    stored_boxes = Mailbox.objects.select_related("domain").in_bulk(list(boxes))
    assert len(boxes) == 2
    with django_assert_num_queries(0):
        for mailbox in boxes.values():
            stored = stored_boxes[mailbox.pk]
            assert _fields(mailbox) == _fields(stored)
            assert _fields(mailbox.domain) == _fields(stored.domain)
    # They are ordinary instances: saved, they write what they hold.
    message = loaded[messages[0].pk]
    message.last_error = "checked"
    message.save(update_fields=["last_error"])
    assert Message.objects.get(pk=message.pk).last_error == "checked"
    assert sql.load(Message, []) == {}


def test_load_leaves_out_a_row_whose_required_key_finds_nothing(
    django_assert_num_queries: Any,
) -> None:
    """As select_related does: a mailbox's domain cannot be null, so a mailbox whose domain
    is not there (a deferred constraint allows it until the transaction commits) is not
    read, rather than read with no domain; a message's enrollment can be null, so a message
    whose enrollment is not there is read, with none, and its lead's join does not drop it."""
    account = _account()
    first, second = claimed_campaign_messages(2, provider=account, mailboxes_per_domain=2)
    assert first.mailbox_id != second.mailbox_id
    domain_id = Mailbox.objects.get(pk=first.mailbox_id or 0).domain_id
    missing = (Domain.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 100
    Mailbox.objects.filter(pk=first.mailbox_id or 0).update(domain_id=missing)
    Message.objects.filter(pk=second.pk).update(enrollment_id=(second.enrollment_id or 0) + 100)
    mailboxes = {first.mailbox_id, second.mailbox_id}
    messages = [first.pk, second.pk]

    expected_boxes = Mailbox.objects.select_related("domain").in_bulk(list(mailboxes))
    expected_messages = Message.objects.select_related("enrollment__lead").in_bulk(messages)
    with django_assert_num_queries(2):
        boxes = sql.load(Mailbox, mailboxes, follow=["domain"])
        loaded = sql.load(Message, messages, follow=["enrollment__lead"])

    assert sorted(boxes) == sorted(expected_boxes) == [second.mailbox_id]
    assert sorted(loaded) == sorted(expected_messages) == sorted(messages)
    with django_assert_num_queries(0):
        assert loaded[second.pk].enrollment is None
        assert loaded[first.pk].enrollment is not None
    # Mended before the test's end checks the constraints.
    Mailbox.objects.filter(pk=first.mailbox_id or 0).update(domain_id=domain_id)
    Message.objects.filter(pk=second.pk).update(enrollment_id=second.enrollment_id)


@pytest.mark.parametrize(
    "model",
    [
        Message,
        Enrollment,
        Lead,
        Mailbox,
        Domain,
        ProviderAccount,
        Step,
        Campaign,
        Variant,
        SendAttempt,
        PoolSettings,
        ProviderCircuit,
        ProviderHealth,
    ],
)
def test_no_model_that_load_builds_sets_anything_up_at_init(model: type[Model]) -> None:
    # sql.load and sql.new fill instances without Model.__init__: a listener of
    # pre_init/post_init (a field tracker, say) would miss them.
    assert not pre_init.has_listeners(model)
    assert not post_init.has_listeners(model)
    assert "__init__" not in model.__dict__


def test_new_builds_the_unsaved_instance_the_model_builds() -> None:
    account = _account()
    [message] = claimed_campaign_messages(1, provider=account)
    values = {
        "message_id": message.pk,
        "mailbox_id": message.mailbox_id,
        "provider_account_id": account.pk,
        "outcome": SendAttempt.Outcome.SENT,
        "code": "250",
        "response": "ok",
        "at": T1,
    }
    built, expected = sql.new(SendAttempt, **values), SendAttempt(**values)
    assert _fields(built) == _fields(expected)
    assert (built._state.adding, built._state.db) == (True, None)
    assert built.get_deferred_fields() == set()
    # Stored as any instance: it gets its key and reads back the same.
    [pk] = bulk.insert(SendAttempt, [built], returning_pks=True)
    assert built.pk == pk and not built._state.adding
    assert _fields(SendAttempt.objects.get(pk=pk)) == _fields(built)
    # Every field is named: a missing one (no default applied) is refused, with its name.
    del values["code"]
    with pytest.raises(AssertionError, match="code"):
        sql.new(SendAttempt, **values)


def test_load_every_reads_a_whole_table_with_what_it_follows(
    django_assert_num_queries: Any,
) -> None:
    standby = _account()
    primary = ProviderAccount.objects.create(name="primary", kind="sandbox", standby=standby)
    expected = ProviderAccount.objects.select_related("standby").in_bulk()

    with django_assert_num_queries(1):
        loaded = sql.load_every(ProviderAccount, follow=["standby"])

    assert sorted(loaded) == sorted(expected) == sorted([standby.pk, primary.pk])
    with django_assert_num_queries(0):
        for pk, account in loaded.items():
            assert _fields(account) == _fields(expected[pk])
            attached = account.standby
            assert attached is None if pk == standby.pk else _fields(attached) == _fields(standby)
