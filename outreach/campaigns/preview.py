"""The exact message one lead would get from one step: headers and both parts, for humans."""

from __future__ import annotations

from email.headerregistry import Address
from email.utils import format_datetime, make_msgid

from outreach.campaigns.models import Enrollment, Lead, Message, Step
from outreach.campaigns.templates import (
    RenderedEmail,
    choose_variant,
    render_message,
    variant_seed,
)
from outreach.campaigns.unsubscribe import unsubscribe_url
from outreach.lib import clock
from outreach.pool.models import Mailbox


class PreviewError(ValueError):
    pass


def preview_message(step: Step, lead: Lead) -> Message:
    """The message ``lead`` gets (or got) from ``step``: the stored one, else an unsaved one."""
    enrollment = Enrollment.objects.filter(campaign=step.campaign, lead=lead).first()
    if enrollment is None:
        # Not enrolled (yet): preview as if it were, without saving anything.
        enrollment = Enrollment(campaign=step.campaign, lead=lead)
    else:
        stored = Message.objects.filter(enrollment=enrollment, step=step).first()
        if stored is not None:
            return stored
    variants = list(step.variants.all())
    if not variants:
        raise PreviewError(f"step {step.position} has no variant")
    variant = choose_variant(variants, variant_seed(enrollment.pk, step.pk))
    return Message(
        enrollment=enrollment,
        step=step,
        variant=variant,
        campaign=step.campaign,
        to_email=lead.email,
        to_domain=lead.email_domain,
        pinned_mailbox=enrollment.thread_mailbox if step.position > 1 else None,
    )


def format_preview(message: Message) -> str:
    """Headers as the sending engine sets them, then the text and the HTML part."""
    rendered: RenderedEmail = render_message(message)
    lead = message.enrollment.lead if message.enrollment else None
    mailbox: Mailbox | None = message.mailbox or message.pinned_mailbox
    campaign = message.campaign
    sender_name = (campaign.from_name if campaign else "") or (
        mailbox.display_name if mailbox else ""
    )
    if mailbox is not None:
        sender = str(Address(sender_name, addr_spec=mailbox.address))
        msgid = message.message_id_header or make_msgid(domain=mailbox.domain.name)
    else:
        sender = "(the mailbox the scheduler picks at send time)"
        msgid = message.message_id_header or "(generated on the sending domain at send time)"
    to_name = " ".join(p for p in (lead.first_name, lead.last_name) if p) if lead else ""
    link = unsubscribe_url(message.pk or 0)
    headers = [
        ("From", sender),
        ("To", str(Address(to_name, addr_spec=message.to_email))),
        ("Subject", rendered.subject),
        ("Date", format_datetime(message.sent_at or clock.now())),
        ("Message-ID", msgid),
    ]
    if message.in_reply_to:
        headers.append(("In-Reply-To", message.in_reply_to))
        headers.append(("References", message.references or message.in_reply_to))
    headers += [
        ("List-Unsubscribe", f"<{link}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "multipart/alternative"),
    ]
    lines = [f"{name}: {value}" for name, value in headers]
    lines += ["", "--- text/plain; charset=utf-8 ---", rendered.text.rstrip()]
    lines += ["", "--- text/html; charset=utf-8 ---", rendered.html.rstrip(), ""]
    return "\n".join(lines)
