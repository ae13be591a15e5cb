"""Step 2 of the sending engine, the provider call (see :mod:`outreach.sending.engine`).

Render, build the MIME message, commit that the call begins (:func:`begin_call`, which also
records the connection's previous acceptance), hand it to the provider. Nothing here writes
the outcome: :mod:`outreach.sending.finish` records a batch of calls at once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from outreach.campaigns.models import Campaign, Message, Step, Variant
from outreach.campaigns.templates import render_message
from outreach.lib import clock, sql
from outreach.pool.models import Mailbox, ProviderAccount
from outreach.providers import base, mime
from outreach.providers.base import Envelope, SendError, SendResult
from outreach.scheduler.warmup import warmup_content
from outreach.sending import hooks
from outreach.sending.take import State, Taken

log = logging.getLogger(__name__)

# The SendError code of a message that cannot be built (no provider was called).
BUILD_FAILED = "build"
# How long such a message waits before it is built again (its campaign pauses before long).
BUILD_RETRY_DELAY = timedelta(minutes=15)

# A call the provider accepted: (message pk, worker, when, provider's id).
Accepted = tuple[int, str, datetime, str]


class ProviderCache:
    """Provider instances of one thread, rebuilt when their account's configuration changes."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[str, base.Provider]] = {}
        # The last call of this thread the provider accepted and that is not written yet;
        # :func:`begin_call` writes it.
        self.accepted: Accepted | None = None
        # The fingerprint of the account object last seen: a batch's messages share one.
        self._seen: tuple[ProviderAccount, str] | None = None

    def get(self, account: ProviderAccount) -> base.Provider:
        if self._seen is not None and self._seen[0] is account:
            fingerprint = self._seen[1]
        else:
            fingerprint = hashlib.sha256(
                json.dumps(
                    [account.kind, account.settings, account.secrets], sort_keys=True
                ).encode()
            ).hexdigest()
            self._seen = (account, fingerprint)
        cached = self._items.get(account.pk)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        if cached is not None:
            cached[1].close()
        provider = base.build(account.kind, account.settings, account.secrets)
        self._items[account.pk] = (fingerprint, provider)
        return provider

    def close(self) -> None:
        for _, provider in self._items.values():
            provider.close()
        self._items.clear()


@dataclass
class Called:
    """What became of one taken message's provider call, before it is recorded.

    Exactly one of ``result`` (accepted), ``error`` (refused; ``called`` False when the
    provider was never reached) and ``unexpected`` (the call ended in a provider bug: it may
    or may not have gone out) is set.
    """

    message: Message
    account: ProviderAccount
    result: SendResult | None = None
    error: SendError | None = None
    unexpected: str | None = None
    called: bool = True
    clean: bool = False
    # The call never began (none of the above is set): the recovery took the message back
    # after its lease ran out, or its start could not be written (the database went away).
    # It was not sent; its row is left to the recovery.
    taken_back: bool = False


def load_taken(taken: list[Taken], *, for_rendering: bool = True) -> list[tuple[Message, Taken]]:
    """The taken messages with everything rendering and finishing reads.

    A message brings its enrollment and lead (not with ``for_rendering`` False: finishing
    reads neither, and a message rendered all the same reads them when it does); what a
    batch shares (mailboxes and their domains, accounts, campaigns, steps, variants) is read
    once per batch and attached, a query each, rather than joined into every row and built
    again for every message.
    """
    follow = ["enrollment__lead"] if for_rendering else []
    by_pk = sql.load(Message, [t.message_id for t in taken], follow=follow)
    rows = list(by_pk.values())
    mailboxes = sql.load(Mailbox, {m.mailbox_id for m in rows}, follow=["domain"])
    accounts = sql.load(ProviderAccount, {m.provider_account_id for m in rows})
    steps = sql.load(Step, {m.step_id for m in rows})
    campaigns = sql.load(
        Campaign, {m.campaign_id for m in rows} | {s.campaign_id for s in steps.values()}
    )
    variants = sql.load(Variant, {m.variant_id for m in rows})
    # Attached as select_related attaches them (straight into the instances' cache of
    # related objects): assigning each through its descriptor checks the database router
    # and the type, once per field and message, which cost as much as reading them.
    for step in steps.values():
        step._state.fields_cache["campaign"] = campaigns[step.campaign_id]
    for m in rows:
        related = m._state.fields_cache
        related["mailbox"] = mailboxes.get(m.mailbox_id or 0)
        related["provider_account"] = accounts.get(m.provider_account_id or 0)
        related["campaign"] = campaigns.get(m.campaign_id or 0)
        related["step"] = steps.get(m.step_id or 0)
        related["variant"] = variants.get(m.variant_id or 0)
    return [(by_pk[t.message_id], t) for t in taken if t.message_id in by_pk]


@dataclass(frozen=True)
class Prepared:
    """A taken message rendered and built, ready for its provider call."""

    message: Message
    account: ProviderAccount
    raw: bytes
    envelope: Envelope
    clean: bool
    send_at: float | None = None


def prepare_call(message: Message, taken: Taken) -> Prepared | Called:
    """Render and build one taken message: a :class:`Prepared`, or the :class:`Called` of a
    message that cannot be built (the provider is never reached); writes nothing."""
    account = message.provider_account
    mailbox = message.mailbox
    assert account is not None and mailbox is not None
    try:
        raw, envelope = _prepare(message, mailbox, account)
    except SendError as err:
        return Called(message, account, error=err, called=False)
    except Exception as exc:
        # Rendering or building failed (a template error, a broken address): the provider
        # was never called; the message waits for the campaign to be fixed (_apply_failure).
        log.warning("message %s cannot be built: %s", message.pk, exc)
        build_error = SendError(
            f"cannot build the message: {exc}", permanent=True, code=BUILD_FAILED
        )
        return Called(message, account, error=build_error, called=False)
    return Prepared(message, account, raw, envelope, taken.circuit_clean, taken.send_at)


def deliver(prepared: Prepared | Called, *, providers: ProviderCache) -> Called:
    """Hand one prepared message to its provider, at its send slot when its account has a
    rate; writes nothing. (A :class:`Called` passes through: its message could not be built.)

    The message is ``sending`` (committed by :func:`take_batch`) before this runs.
    """
    if isinstance(prepared, Called):
        return prepared
    message, account = prepared.message, prepared.account
    try:
        provider = providers.get(account)
    except SendError as err:
        return Called(message, account, error=err, called=False)
    if prepared.send_at is not None:
        time.sleep(max(0.0, prepared.send_at - time.monotonic()))
    try:
        began = begin_call(message, providers)
    except DatabaseError:
        # Written or not, nothing goes out: the recovery finds it never began, or began
        # with no answer (in doubt until reconciled, never resent before).
        log.exception("cannot write that the call of message %s begins", message.pk)
        began = False
    if not began:
        return Called(message, account, called=False, taken_back=True)
    try:
        result = provider.send(prepared.raw, prepared.envelope)
    except SendError as err:
        return Called(message, account, error=err)
    except Exception as exc:
        # A provider bug after the call began: it may or may not have gone out. A duplicate
        # cold email is worse than a missing one, so the operator decides.
        log.exception("provider %s failed unexpectedly on message %s", account.name, message.pk)
        return Called(message, account, unexpected=repr(exc))
    providers.accepted = (message.pk, message.claimed_by, clock.now(), result.provider_message_id)
    return Called(message, account, result=result, clean=prepared.clean)


def begin_call(message: Message, providers: ProviderCache) -> bool:
    """Commit that ``message``'s provider call begins now; False when it must not begin.

    The same statement (one commit per message) records the acceptance of this thread's
    previous call (``providers.accepted``), so a worker killed at any moment leaves, per
    connection, at most one message whose call began with no answer written: the truly
    unknown one. Race prevented: the lease of a stalled worker runs out and the recovery
    (:func:`expire_sending`) sends a message whose call never began back to routing while
    the worker is about to call; both are conditional on ``sending`` with no call started,
    so exactly one wins and a message the recovery took back is never sent.
    """
    # This thread's connection, looked up once: each use of the ``connection`` proxy looks it
    # up again in the thread's connection handler.
    db = connections[DEFAULT_DB_ALIAS]
    statement, params = begin_call_statement(db, message, providers.accepted)
    # The driver's own cursor, in autocommit: one statement per provider call, where the
    # ORM's cursor wrapper cost as much again as the statement (errors still come up as
    # Django's DatabaseError, and mark the connection for _close_thread_connection).
    db.ensure_connection()
    with db.wrap_database_errors:
        cursor = db.connection.cursor()
        try:
            cursor.execute(statement, params)
            changed = {row[0] for row in cursor.fetchall()}
        finally:
            cursor.close()
    providers.accepted = None
    return message.pk in changed


def begin_call_statement(
    db: BaseDatabaseWrapper, message: Message, accepted: Accepted | None
) -> tuple[str, list[Any]]:
    """:func:`begin_call`'s statement on ``db`` (in the driver's own placeholders) and its
    parameters: ``message`` begins, ``accepted`` (the connection's previous call) is
    recorded."""
    adapt = db.ops.adapt_datetimefield_value
    now = adapt(clock.now())
    prev_pk, prev_worker, prev_at, prev_id = accepted or (0, "", None, "")
    params = [
        *(message.pk, now),
        *(prev_pk, adapt(prev_at) if prev_at is not None else now),
        *(prev_pk, prev_id[:255]),
        *(message.pk, prev_pk),
        *(message.pk, State.SENDING, message.claimed_by),
        *(State.SENDING, prev_worker),
    ]
    return _begin_call_sql(db.vendor), params


@functools.cache
def _begin_call_sql(vendor: str) -> str:
    """:func:`begin_call`'s statement: written once, as SQL, for the cost of a send."""
    q = connection.ops.quote_name
    # The model's field names are its column names (no db_column anywhere on Message).
    started, accepted, provider_id, pk, state, claimed_by = (
        q(c)
        for c in (
            "call_started_at",
            "accepted_at",
            "provider_message_id",
            "id",
            "state",
            "claimed_by",
        )
    )
    # Identifiers come from the model; every value is a parameter (the driver's own
    # placeholder: the statement goes to it directly). The two rows are found by their ids
    # alone, their conditions behind a CASE no index can answer: with ``state = 'sending'``
    # as a plain condition PostgreSQL, whose statistics rarely see a message sending, read
    # every sending message through message_due_idx, and the index entries every earlier
    # call had left behind until the next vacuum: 1-4 ms a call instead of 0.2.
    mark = "?" if vendor == "sqlite" else "%s"
    return (
        f"UPDATE {q(Message._meta.db_table)} SET "  # noqa: S608
        f"{started} = CASE WHEN {pk} = {mark} THEN {mark} ELSE {started} END, "
        f"{accepted} = CASE WHEN {pk} = {mark} THEN {mark} ELSE {accepted} END, "
        f"{provider_id} = CASE WHEN {pk} = {mark} THEN {mark} ELSE {provider_id} END "
        f"WHERE {pk} IN ({mark}, {mark}) AND CASE WHEN {pk} = {mark} "
        f"THEN {state} = {mark} AND {claimed_by} = {mark} AND {started} IS NULL "
        f"ELSE {state} = {mark} AND {claimed_by} = {mark} END "
        f"RETURNING {pk}"
    )


def call_provider(message: Message, taken: Taken, *, providers: ProviderCache) -> Called:
    """:func:`prepare_call` then :func:`deliver`: one taken message through its provider."""
    return deliver(prepare_call(message, taken), providers=providers)


def _prepare(
    message: Message, mailbox: Mailbox, account: ProviderAccount
) -> tuple[bytes, Envelope]:
    unsubscribe = hooks.unsubscribe_url(message.pk)
    rendered = _render(message, unsubscribe)
    credentials, dkim_key = signing_of(mailbox, account)
    campaign = message.campaign
    outgoing = mime.Outgoing(
        from_address=mailbox.address,
        from_name=(campaign.from_name if campaign else "") or mailbox.display_name,
        reply_to=mailbox.reply_to,
        to_address=message.to_email,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=message.message_id_header or mime.new_message_id(mailbox.domain.name),
        date=clock.now(),
        unsubscribe_url=unsubscribe,
        unsubscribe_mailto=f"mailto:{mailbox.reply_to or mailbox.address}?subject=unsubscribe",
        in_reply_to=message.in_reply_to,
        references=message.references,
        tag=str(message.pk),
    )
    raw = mime.build(outgoing, dkim_key)
    envelope = Envelope(
        sender=mailbox.address,
        recipient=message.to_email,
        message_id=message.pk,
        credentials=credentials,
    )
    return raw, envelope


def signing_of(
    mailbox: Mailbox, account: ProviderAccount
) -> tuple[dict[str, Any], mime.DkimKey | None]:
    """The mailbox's options with its secrets resolved, and its DKIM key when outreach signs
    for this provider (SMTP relays; API providers sign themselves)."""
    credentials: dict[str, Any] = {
        **mailbox.settings,
        **base.resolve_secrets(mailbox.secrets),
    }
    dkim_key = None
    needs_dkim = base.provider_class(account.kind).needs_dkim_signature
    if needs_dkim and credentials.get("dkim_private_key"):
        dkim_key = mime.DkimKey(
            selector=str(credentials.get("dkim_selector") or mailbox.domain.dkim_selector),
            domain=mailbox.domain.name,
            private_key_pem=str(credentials["dkim_private_key"]),
        )
    return credentials, dkim_key


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def _render(message: Message, unsubscribe_url: str) -> Rendered:
    """The message's content: a campaign step through the template engine; a warm-up message
    from the scheduler's warm-up content (plain text, as a person writes)."""
    if message.kind == Message.Kind.WARMUP or message.enrollment_id is None:
        content = warmup_content(message)
        return Rendered(subject=message.subject or content.subject, html="", text=content.text)
    out = render_message(message, unsubscribe_url=unsubscribe_url)
    campaign, mailbox = message.campaign, message.mailbox
    if campaign is None or mailbox is None or not (campaign.track_opens or campaign.track_clicks):
        return Rendered(subject=out.subject, html=out.html, text=out.text)
    # The flags are read now, when the message is built: turning tracking on or off applies
    # to every message built from then on. The text part is never touched.
    tracked = hooks.instrument(
        out.html,
        message_pk=message.pk,
        host=mailbox.domain.tracking_hostname,
        opens=campaign.track_opens,
        clicks=campaign.track_clicks,
        unsubscribe_url=unsubscribe_url,
    )
    return Rendered(subject=out.subject, html=tracked, text=out.text)
