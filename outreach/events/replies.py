"""Inbound mail kept for the inbox, and what its label does.

A mail read over IMAP belongs to us when it is a delivery report, answers one of our messages
(its events found the message by In-Reply-To/References, else by sender and subject), or
comes from a known lead. Anything else (a stranger's mail, a newsletter) is skipped and
counted per mailbox and day in :class:`InboxSkip`.

Effects of a label (docs/rules.md, Sequences), on top of the event's own (record.apply_effects:
a reply stops the thread's enrollment, an unsubscribe suppresses and stops):

- ``unsubscribe_request``: recorded as an unsubscribe event, so suppression and stopping
  are the event's (one owner), also when the operator relabels;
- ``out_of_office``: the enrollment waits until the day after the return date (default
  :data:`OOO_DEFAULT_DAYS` days) and then goes on;
- ``interested``: the lead is marked and an alert carries the excerpt and a link;
- ``not_interested``: stopped (the reply did it); with the campaign's
  ``suppress_company_on_refusal``, the replier's company domain is suppressed.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse

from outreach.campaigns.models import Campaign, Enrollment, Lead, Message, Suppression
from outreach.campaigns.suppression import is_suppressed, suppress
from outreach.events import normalize as n
from outreach.events import outgoing
from outreach.events.classify import (
    INTERESTED,
    NOT_INTERESTED,
    OUT_OF_OFFICE,
    UNSUBSCRIBE_REQUEST,
    Verdict,
)
from outreach.events.mailcontent import Content
from outreach.events.models import InboundMail, InboxSkip, LabelChange
from outreach.events.record import FREEMAIL_DOMAINS, record, stop_enrollments
from outreach.lib import clock
from outreach.lib.alerting import Kind, Severity, raise_alert
from outreach.pool.models import Mailbox

log = logging.getLogger(__name__)

# An out-of-office without a return date: a week is the usual length of an absence, and a
# follow-up landing in a full inbox the day someone is back is read least.
OOO_DEFAULT_DAYS = 7
EXCERPT_CHARS = 300


def keep_mail(
    content: Content,
    verdict: Verdict,
    mailbox: Mailbox,
    ours: Message | None,
    *,
    folder: str = "",
) -> InboundMail | None:
    """Store the mail if it belongs to us and apply its label; None when it was stored
    already or is not ours (then counted as skipped)."""
    lead = _lead_of(content, ours)
    kind = _kind_of(content, ours, lead)
    if kind is None:
        _count_skip(mailbox)
        return None
    if InboundMail.objects.filter(mailbox=mailbox, key=content.key).exists():
        return None
    mail = _inbound_mail(content, verdict, mailbox, ours, lead, kind=kind, folder=folder)
    try:
        with transaction.atomic():
            mail.save(force_insert=True)
    except IntegrityError:  # another reader stored it a moment ago
        return None
    apply_label(mail, verdict.label)
    outgoing.emit(
        "reply.received",
        {**outgoing.mail_summary(mail), "label": mail.label, "reason": mail.label_reason},
        key=f"reply.received:{mail.pk}",
    )
    return mail


def _lead_of(content: Content, ours: Message | None) -> Lead | None:
    """The lead of our message's enrollment, else the lead with the sender's address."""
    lead = None
    if ours is not None and ours.enrollment_id is not None:
        lead = Lead.objects.filter(enrollments__pk=ours.enrollment_id).first()
    if lead is None and content.from_address:
        lead = Lead.objects.filter(email__iexact=content.from_address).first()
    return lead


def _kind_of(content: Content, ours: Message | None, lead: Lead | None) -> str | None:
    """What the mail is to us: a delivery report, a reply, a lead's own mail; None if not ours."""
    if content.is_report:
        return InboundMail.Kind.DSN
    if ours is not None:
        return InboundMail.Kind.REPLY
    if lead is not None:
        return InboundMail.Kind.LEAD_MAIL
    return None


def _enrollment_of(ours: Message | None, lead: Lead | None) -> int | None:
    """Our message's enrollment, else the lead's latest."""
    enrollment_id = ours.enrollment_id if ours is not None else None
    if enrollment_id is None and lead is not None:
        latest = lead.enrollments.order_by("-created_at", "-pk").first()
        enrollment_id = latest.pk if latest is not None else None
    return enrollment_id


def _inbound_mail(
    content: Content,
    verdict: Verdict,
    mailbox: Mailbox,
    ours: Message | None,
    lead: Lead | None,
    *,
    kind: str,
    folder: str,
) -> InboundMail:
    """The row to store for the mail (not saved)."""
    return InboundMail(
        mailbox=mailbox,
        key=content.key,
        kind=kind,
        folder=folder[:255],
        message_id_header=content.message_id,
        in_reply_to=content.in_reply_to,
        references=" ".join(content.references),
        from_address=content.from_address,
        from_name=content.from_name,
        to=content.to,
        subject=content.subject,
        headers=content.headers,
        text_body=content.text,
        html_body=content.html,
        visible_text=content.visible,
        signature=content.signature,
        quoted_text=content.quoted,
        attachments=content.attachments,
        size=min(content.size, 2**31 - 1),
        problems=content.problems,
        message=ours,
        lead=lead,
        enrollment_id=_enrollment_of(ours, lead),
        campaign_id=ours.campaign_id if ours is not None else None,
        label=verdict.label,
        label_reason=verdict.reason[:500],
        return_date=verdict.return_date,
        referred_address=verdict.referred_address[:254],
        occurred_at=content.date or clock.now(),
    )


def _count_skip(mailbox: Mailbox) -> None:
    day = clock.today()
    if not InboxSkip.objects.filter(mailbox=mailbox, day=day).update(count=F("count") + 1):
        try:
            with transaction.atomic():
                InboxSkip.objects.create(mailbox=mailbox, day=day, count=1)
        except IntegrityError:
            InboxSkip.objects.filter(mailbox=mailbox, day=day).update(count=F("count") + 1)


def apply_label(mail: InboundMail, label: str) -> None:
    """What ``label`` does to the lead and the sequence (see the module's docstring)."""
    if label == UNSUBSCRIBE_REQUEST and mail.from_address:
        if is_suppressed(mail.from_address):
            return  # the mail's own unsubscribe event did it already
        # Through the event: its effects own suppression and stopping.
        record(
            n.Incoming(
                source="inbox",
                type=n.UNSUBSCRIBED,
                recipient=mail.from_address,
                occurred_at=clock.now(),
                provider_event_id=f"inbox:{mail.pk}:unsubscribe",
                outreach_message_id=mail.message_id,
                raw={"inbound_mail": mail.pk, "reason": mail.label_reason},
            )
        )
    elif label == OUT_OF_OFFICE:
        postpone(mail.enrollment_id, resume_at(mail.return_date, mail.occurred_at))
    elif label == INTERESTED:
        _mark_interested(mail)
    elif label == NOT_INTERESTED:
        _refused(mail)


def resume_at(returns: date | None, received: datetime) -> datetime:
    """The moment a sequence paused by an absence goes on: the start of the day after the
    return date, else :data:`OOO_DEFAULT_DAYS` days after the notice."""
    if returns is None:
        return received + timedelta(days=OOO_DEFAULT_DAYS)
    day = returns + timedelta(days=1)
    return datetime.combine(day, time(0, 0), tzinfo=ZoneInfo("UTC"))


def postpone(enrollment_id: int | None, until: datetime) -> None:
    """Hold the enrollment's next step until ``until``: its due time, or its planned and not
    yet claimed message. Never earlier than already planned; never stopped."""
    if enrollment_id is None:
        return
    Enrollment.objects.filter(
        pk=enrollment_id, state=Enrollment.State.ACTIVE, next_due_at__lt=until
    ).update(next_due_at=until)
    waiting = Message.objects.filter(
        enrollment_id=enrollment_id,
        state__in=(Message.State.SCHEDULED, Message.State.RETRY),
        not_before__lt=until,
    )
    for message in waiting:
        changes = {"not_before": until, "updated_at": clock.now()}
        if message.expires_at is not None:
            # A follow-up's wait for its thread's mailbox starts again from the new time;
            # left as it was, the postponed follow-up would expire before it may be sent.
            changes["expires_at"] = until + (message.expires_at - message.not_before)
        # Conditional on the state we read: a worker claiming it meanwhile wins.
        Message.objects.filter(pk=message.pk, state=message.state).update(**changes)


def _mark_interested(mail: InboundMail) -> None:
    now = clock.now()
    if mail.lead_id is not None:
        Lead.objects.filter(pk=mail.lead_id, interested_at__isnull=True).update(interested_at=now)
    excerpt = " ".join((mail.visible_text or mail.text_body).split())[:EXCERPT_CHARS]
    path = reverse("dashboard:inbox_thread", args=[mail.pk])
    link = f"{settings.OUTREACH_BASE_URL.rstrip('/')}{path}"
    raise_alert(
        f"interested:{mail.pk}",
        Kind.LEAD_INTERESTED,
        f"Interested reply from {mail.from_address}: “{excerpt}”\n{link}",
        severity=Severity.INFO,
        figures={"inbound_mail": mail.pk, "lead": mail.lead_id, "link": link},
    )
    outgoing.emit(
        "lead.interested",
        {**outgoing.mail_summary(mail), "excerpt": excerpt, "link": link},
        key=f"lead.interested:{mail.pk}",
    )


def _refused(mail: InboundMail) -> None:
    if mail.enrollment_id is not None:
        stop_enrollments(Enrollment.objects.filter(pk=mail.enrollment_id), "reply")
    campaign = Campaign.objects.filter(pk=mail.campaign_id).first() if mail.campaign_id else None
    domain = mail.from_address.rpartition("@")[2]
    if campaign is None or not campaign.suppress_company_on_refusal or not domain:
        return
    if domain in FREEMAIL_DOMAINS:
        return  # a Gmail user's refusal speaks for nobody else
    suppress(
        domain,
        Suppression.Source.MANUAL,
        kind=Suppression.Kind.DOMAIN,
        reason=f"not interested: reply {mail.pk} to campaign {campaign.slug}",
        created_by="inbox",
    )
    stop_enrollments(
        Enrollment.objects.filter(lead__email_domain__iexact=domain),
        Enrollment.StopReason.SUPPRESSED,
    )


def relabel(mail: InboundMail, label: str, *, actor: str) -> bool:
    """The operator's label for ``mail``, audited, and its effects; False when unchanged."""
    if label not in InboundMail.Label.values:
        raise ValueError(f"unknown label {label!r}")
    if label == mail.label:
        return False
    with transaction.atomic():
        LabelChange.objects.create(mail=mail, from_label=mail.label, to_label=label, actor=actor)
        InboundMail.objects.filter(pk=mail.pk).update(
            label=label, labeled_by=actor[:150], label_reason=f"set by {actor}"[:500]
        )
        mail.label, mail.labeled_by, mail.label_reason = label, actor, f"set by {actor}"
        apply_label(mail, label)
    return True


def needs_answer() -> Q:
    """Mails the operator still has to answer: human replies not done, not snoozed."""
    now = clock.now()
    return (
        Q(done_at__isnull=True, answered_at__isnull=True)
        & ~Q(label__in=("auto_reply", "bounce", "out_of_office", "unsubscribe_request"))
        & (Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now))
    )
