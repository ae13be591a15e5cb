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
from django.db.models import Count, Q, QuerySet
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

# Threads per page of the list, newest first; older ones are on the next pages.
PAGE_THREADS = 50
# Mails read at a time while looking for a page's threads (only their keys).
SCAN_MAILS = 500
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


def _older_than(at: datetime, pk: int) -> Q:
    """Mails after the given one in the list's order (newest first)."""
    return Q(occurred_at__lt=at) | Q(occurred_at=at, pk__lt=pk)


def _of_threads(keys: list[Any]) -> Q:
    """The mails of the given threads (a lead's id, or a sender's address without a lead)."""
    leads = [k for k in keys if isinstance(k, int)]
    senders = [k for k in keys if isinstance(k, str)]
    return Q(lead_id__in=leads) | Q(lead__isnull=True, from_address__in=senders)


def _page(mails: QuerySet[InboundMail], before: InboundMail | None) -> tuple[list[Thread], bool]:
    """One page of threads, newest first: the threads whose newest mail comes after
    ``before`` (keyset paging, the newest page without it), and whether older ones remain.
    Reads the mails newest first in batches, only their keys, until a page is full."""
    older = mails if before is None else mails.filter(_older_than(before.occurred_at, before.pk))
    first: dict[Any, int] = {}  # thread key -> its newest mail on this page
    cursor = Q()
    while len(first) <= PAGE_THREADS:
        batch = list(
            older.filter(cursor).values_list("pk", "lead_id", "from_address", "occurred_at")[
                :SCAN_MAILS
            ]
        )
        fresh: dict[Any, int] = {}
        for pk, lead_id, sender, _ in batch:
            key = lead_id or sender
            if key not in first and key not in fresh:
                fresh[key] = pk
        if before is not None and fresh:
            # A thread with a mail at or before the cursor was listed on a newer page.
            shown = mails.filter(_of_threads(list(fresh))).exclude(
                _older_than(before.occurred_at, before.pk)
            )
            for lead_id, sender in shown.values_list("lead_id", "from_address"):
                fresh.pop(lead_id or sender, None)
        first.update(fresh)
        if len(batch) < SCAN_MAILS:
            break
        cursor = _older_than(batch[-1][3], batch[-1][0])
    keys = list(first)[:PAGE_THREADS]
    if not keys:
        return [], False
    counts: dict[Any, tuple[int, int]] = {}
    rows = (
        older.filter(_of_threads(keys))
        .order_by()
        .values_list("lead_id", "from_address")
        .annotate(count=Count("pk"), unread=Count("pk", filter=Q(read_at__isnull=True)))
    )
    for lead_id, sender, count, unread in rows:
        key = lead_id or sender
        total, new = counts.get(key, (0, 0))
        counts[key] = (total + count, new + unread)
    # The list shows no bodies but the visible reply: the rest stays in the database.
    latest = mails.defer(*LIST_DEFERRED).in_bulk([first[k] for k in keys])
    threads = [Thread(latest[first[k]], *counts[k]) for k in keys]
    return threads, len(first) > PAGE_THREADS


@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    form = InboxFilter(request.GET or None)
    mails = _filtered(form)
    before = None
    if request.GET.get("before", "").isdigit():
        before = InboundMail.objects.filter(pk=request.GET["before"]).first()
    threads, more = _page(mails, before)
    return render(
        request,
        "dashboard/inbox.html",
        {
            "form": form,
            "threads": threads,
            "older": threads[-1].latest.pk if more else None,
            "paged": before is not None,
            "labels": InboundMail.Label.choices,
            "campaigns": Campaign.objects.order_by("slug").values_list("pk", "slug"),
            "mailboxes": Mailbox.objects.order_by("address").values_list("pk", "address"),
            "filtered": any(key != "before" for key in request.GET),
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
