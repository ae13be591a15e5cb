"""The unified inbox: the replies of every mailbox, threaded by lead, with their labels.

Threads are the mails of one lead (or, for a DSN or a mail without a lead, of one sender),
newest first. A thread's page shows our messages and theirs in order, the label with its
reason, and lets staff relabel, mark done, snooze and answer. Actions go through the owning
apps: :func:`outreach.events.replies.relabel` and :func:`outreach.events.answer.send_answer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from outreach.campaigns.models import Campaign, Message
from outreach.dashboard.views import _actor, staff_required
from outreach.events.answer import AnswerRefused, quoted, refusal, send_answer, standing_of
from outreach.events.models import InboundMail
from outreach.events.replies import needs_answer, relabel
from outreach.lib import clock
from outreach.pool.models import Mailbox

# Mails read for one page of threads: a morning's replies for a pool of 30 mailboxes fit.
PAGE_MAILS = 500
# The columns of a mail the inbox list never shows (the thread page reads them).
LIST_DEFERRED = (
    "headers",
    "html_body",
    "signature",
    "quoted_text",
    "references",
    "attachments",
    "problems",
    "to",
)
SNOOZE_CHOICES = {"1d": timedelta(days=1), "3d": timedelta(days=3), "7d": timedelta(days=7)}


class InboxFilter(forms.Form):
    label = forms.ChoiceField(
        required=False, choices=[("", "any label"), *InboundMail.Label.choices]
    )
    campaign = forms.IntegerField(required=False)
    mailbox = forms.IntegerField(required=False)
    needs_answer = forms.BooleanField(required=False)


@dataclass
class Thread:
    latest: InboundMail
    count: int
    unread: int


def unread_count() -> int:
    """Human mails nobody has opened yet (the count in the navigation)."""
    return InboundMail.objects.filter(read_at__isnull=True).exclude(kind="dsn").count()


def _thread_q(mail: InboundMail) -> Q:
    if mail.lead_id is not None:
        return Q(lead_id=mail.lead_id)
    return Q(lead__isnull=True, from_address=mail.from_address)


def _filtered(form: InboxFilter) -> QuerySet[InboundMail]:
    mails = InboundMail.objects.select_related("mailbox", "campaign", "lead")
    data = form.cleaned_data if form.is_valid() else {}
    if data.get("label"):
        mails = mails.filter(label=data["label"])
    if data.get("campaign"):
        mails = mails.filter(campaign_id=data["campaign"])
    if data.get("mailbox"):
        mails = mails.filter(mailbox_id=data["mailbox"])
    if data.get("needs_answer"):
        mails = mails.filter(needs_answer())
    return mails.order_by("-occurred_at", "-pk")


@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    form = InboxFilter(request.GET or None)
    threads: dict[Any, Thread] = {}
    # The list shows no bodies but the visible reply: the rest stays in the database.
    for mail in _filtered(form).defer(*LIST_DEFERRED)[:PAGE_MAILS]:
        key = mail.lead_id or mail.from_address
        thread = threads.get(key)
        if thread is None:
            threads[key] = thread = Thread(latest=mail, count=0, unread=0)
        thread.count += 1
        thread.unread += mail.read_at is None
    return render(
        request,
        "dashboard/inbox.html",
        {
            "form": form,
            "threads": list(threads.values()),
            "labels": InboundMail.Label.choices,
            "campaigns": Campaign.objects.order_by("slug").values_list("pk", "slug"),
            "mailboxes": Mailbox.objects.order_by("address").values_list("pk", "address"),
            "filtered": bool(request.GET),
        },
    )


@dataclass
class Entry:
    """One message of a thread: ours (``Message``) or theirs (``InboundMail``)."""

    at: datetime
    ours: bool
    subject: str
    text: str
    who: str
    mail: InboundMail | None = None
    answer: bool = False


@require_GET
def thread(request: HttpRequest, pk: int) -> HttpResponse:
    mail = get_object_or_404(InboundMail.objects.select_related("mailbox__domain"), pk=pk)
    theirs = list(InboundMail.objects.filter(_thread_q(mail)).order_by("occurred_at", "pk"))
    addresses = {m.from_address for m in theirs if m.from_address}
    if mail.lead is not None:
        addresses.add(mail.lead.email)
    ours = Message.objects.filter(
        to_email__in=addresses, sent_at__isnull=False, state=Message.State.SENT
    ).select_related("mailbox", "answer", "step")
    entries = [
        Entry(
            m.occurred_at,
            False,
            m.subject,
            m.visible_text or m.text_body or _not_kept(m.received_at),
            m.from_address,
            m,
        )
        for m in theirs
    ] + [
        Entry(
            m.sent_at or m.created_at,
            True,
            m.subject,
            _our_text(m),
            m.mailbox.address if m.mailbox else "",
            answer=m.kind == Message.Kind.REPLY,
        )
        for m in ours
    ]
    # On a tie (the same minute), our first mail came before their reply, and our answer
    # after it.
    entries.sort(key=lambda e: (e.at, 2 if e.ours and e.answer else (0 if e.ours else 1)))
    unread = [m.pk for m in theirs if m.read_at is None]
    if unread:
        InboundMail.objects.filter(pk__in=unread, read_at__isnull=True).update(read_at=clock.now())
    return render(
        request,
        "dashboard/inbox_thread.html",
        {
            "mail": mail,
            "entries": entries,
            "labels": InboundMail.Label.choices,
            "changes": mail.label_changes.all()[:20],
            "cannot_send": refusal(standing_of(mail.mailbox)),
            "quote": quoted(mail),
            "snooze_choices": list(SNOOZE_CHOICES),
        },
    )


def _our_text(message: Message) -> str:
    """An answer's text as written; a campaign message is named by its step (its body is
    rendered at send time and not kept)."""
    answer = getattr(message, "answer", None)
    if answer is not None:
        return answer.text or _not_kept(answer.at)
    return f"(campaign message, step {message.step.position})" if message.step else ""


def _not_kept(at: datetime) -> str:
    """What shows instead of a text the retention removed (outreach.retention)."""
    days = settings.OUTREACH_RETAIN_BODY_DAYS
    if days and at < clock.now() - timedelta(days=days):
        return f"(text not kept: older than {days} days, OUTREACH_RETAIN_BODY_DAYS)"
    return ""


@require_POST
@staff_required
def relabel_view(request: HttpRequest, pk: int) -> HttpResponse:
    mail = get_object_or_404(InboundMail, pk=pk)
    label = request.POST.get("label", "")
    try:
        changed = relabel(mail, label, actor=_actor(request))
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        if changed:
            messages.success(request, f"Labeled {label}.")
    return redirect("dashboard:inbox_thread", pk=pk)


@require_POST
@staff_required
def done_view(request: HttpRequest, pk: int) -> HttpResponse:
    InboundMail.objects.filter(pk=pk).update(done_at=clock.now(), snoozed_until=None)
    messages.success(request, "Marked done.")
    return redirect("dashboard:inbox")


@require_POST
@staff_required
def snooze_view(request: HttpRequest, pk: int) -> HttpResponse:
    span = SNOOZE_CHOICES.get(request.POST.get("for", ""))
    if span is None:
        messages.error(request, "Snooze for 1d, 3d or 7d.")
        return redirect("dashboard:inbox_thread", pk=pk)
    until = clock.now() + span
    InboundMail.objects.filter(pk=pk).update(snoozed_until=until)
    messages.success(request, f"Snoozed until {until:%Y-%m-%d %H:%M}.")
    return redirect("dashboard:inbox")


@require_POST
@staff_required
def answer_view(request: HttpRequest, pk: int) -> HttpResponse:
    mail = get_object_or_404(InboundMail, pk=pk)
    try:
        sent = send_answer(mail, request.POST.get("text", ""), actor=_actor(request))
    except AnswerRefused as exc:
        messages.error(request, f"Not sent: {exc}")
    else:
        messages.success(request, f"Sent from {mail.mailbox.address} to {sent.to_email}.")
    return redirect("dashboard:inbox_thread", pk=pk)
