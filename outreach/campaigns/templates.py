"""Message content: sandboxed Jinja2 templates with spintax, both parts, and the footer.

Contracts:

- Variables are the lead's non-blank fields (``email``, ``first_name``, ``last_name``,
  ``company``, ``title``, ``timezone``), its custom fields, the same under ``lead.*``, and the
  sender's (``sender_name``, ``sender_first_name``, ``sender_email``) once a mailbox is known.
  A blank field is *undefined*, so ``Hi {{ first_name }}`` fails instead of sending "Hi ,";
  templates that accept a missing value say so with ``{{ first_name | default("there") }}``.
- Templates run in Jinja2's immutable sandbox with ``StrictUndefined``, bounded in time,
  output size and numbers (outreach.campaigns.sandbox): Python internals
  (``{{ lead.__class__ }}``) and changes to lead data are refused, an undefined variable is an
  error, and anything that goes wrong in a render is a :class:`RenderError` of one line.
- Spintax is resolved on the source before Jinja2, seeded per lead and step, so re-rendering
  gives the same text and lead data is never spun.
- The HTML part is autoescaped; the text part is derived from the HTML (:mod:`.plaintext`)
  when the variant has none. The unsubscribe link and the postal address are appended to both parts.
- The subject is one line: CR, LF and other whitespace runs become single spaces, so lead data
  can never start a new header.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from jinja2 import StrictUndefined, Template, TemplateSyntaxError

from outreach.campaigns import sandbox, spintax
from outreach.campaigns.models import Enrollment, Lead, Message, Step, Variant
from outreach.campaigns.plaintext import html_to_text
from outreach.campaigns.unsubscribe import unsubscribe_url as make_unsubscribe_url

LEAD_FIELDS = ("email", "first_name", "last_name", "company", "title", "timezone")

_html_env = sandbox.Sandbox(undefined=StrictUndefined, autoescape=True)
_text_env = sandbox.Sandbox(undefined=StrictUndefined, autoescape=False)
# Text templates read from an HTML variant (see _text_template).
_derived_text_env = sandbox.Sandbox(undefined=StrictUndefined, autoescape=False)
_derived_text_env.filters["one_spaced"] = lambda value: re.sub(r"\s+", " ", str(value))
_WHITESPACE = re.compile(r"\s+")
# A link in rendered HTML (validation checks each one is well formed).
HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class RenderError(ValueError):
    """A template could not be rendered (undefined variable, sandbox refusal, syntax).

    ``part`` (subject, html or text) and ``line`` (in that part's template) say where, when
    known: `campaign apply` turns them into a line of the campaign's file.
    """

    def __init__(self, message: str, *, part: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.part = part
        self.line = line


class VariantLike(Protocol):
    subject: str
    body_html: str
    body_text: str


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


# --- variables ---------------------------------------------------------------------------


def lead_context(lead: Lead) -> dict[str, Any]:
    """Template variables of ``lead``: custom fields, then the standard ones (non-blank)."""
    values: dict[str, Any] = {
        key: value for key, value in (lead.custom or {}).items() if value not in ("", None)
    }
    for name in LEAD_FIELDS:
        value = getattr(lead, name)
        if value:
            values[name] = value
    return {**values, "lead": dict(values)}


def sender_context(name: str, email: str) -> dict[str, str]:
    values = {"sender_email": email} if email else {}
    if name:
        values["sender_name"] = name
        values["sender_first_name"] = name.split()[0]
    return values


def sample_context() -> dict[str, Any]:
    """A lead with every standard field filled: what validation uses before any enrollment."""
    values = {
        "email": "sample.lead@example.com",
        "first_name": "Sam",
        "last_name": "Sample",
        "company": "Example Corp",
        "title": "Head of Sales",
        "timezone": "UTC",
    }
    return {**values, "lead": dict(values), **sender_context("Alex Sender", "alex@example.net")}


# --- rendering -----------------------------------------------------------------------------


def choose_variant(variants: Sequence[Variant], seed: str) -> Variant:
    """One of ``variants`` by weight, always the same one for the same ``seed``.

    The same rule as the scheduler's (``outreach.scheduler.routing.choose_variant``), so a
    preview shows the variant the lead will get: SHA-256 of the seed, modulo the total weight.
    """
    if not variants:
        raise ValueError("a step needs at least one variant")
    total = sum(max(0, v.weight) for v in variants)
    if total <= 0:
        return variants[0]
    point = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") % total
    for variant in variants:
        point -= max(0, variant.weight)
        if point < 0:
            return variant
    return variants[-1]


def render_step(
    variant: VariantLike,
    context: Mapping[str, Any],
    *,
    seed: str,
    unsubscribe_url: str,
    postal_address: str,
    thread_subject: str | None = None,
) -> RenderedEmail:
    """Render one variant for one lead. Pure: no database access.

    A blank subject becomes ``"Re: " + thread_subject`` when ``thread_subject`` is given
    (follow-ups replying in the thread); otherwise it is an error. Raises
    :class:`RenderError` with a one-line reason.
    """
    subject_source = variant.subject.strip()
    if subject_source:
        subject = one_line(
            render_source(subject_source, context, f"{seed}:subject", part="subject")
        )
    elif thread_subject:
        subject = one_line(thread_subject)
        if not subject.lower().startswith("re:"):
            subject = f"Re: {subject}"
    else:
        raise RenderError("subject is empty")
    if not subject:
        raise RenderError("subject renders empty")
    html_source = ""
    if variant.body_html.strip():
        html_source = _spin(variant.body_html, f"{seed}:html", part="html")
        body_html = _render_spun(html_source, context, html=True, part="html")
    elif variant.body_text.strip():
        body_html = ""
    else:
        raise RenderError("body is empty")
    if variant.body_text.strip():
        body_text = render_source(variant.body_text, context, f"{seed}:text", part="text").strip()
    else:
        body_text = _text_of_html(html_source, body_html, context)
    if not body_html:
        body_html = text_to_html(body_text)
    return RenderedEmail(
        subject=subject,
        html=_html_footer(body_html, unsubscribe_url, postal_address),
        text=_text_footer(body_text, unsubscribe_url, postal_address),
    )


def render_message(message: Message, *, unsubscribe_url: str | None = None) -> RenderedEmail:
    """The content of a campaign message: its enrollment's lead, its step and its variant
    (``unsubscribe_url``: the message's own, when the caller has it already)."""
    enrollment, step, variant = message.enrollment, message.step, message.variant
    if enrollment is None or step is None or variant is None:
        raise RenderError(f"message {message.pk} has no enrollment, step or variant")
    campaign = step.campaign
    context = lead_context(enrollment.lead)
    mailbox = message.mailbox or message.pinned_mailbox or enrollment.thread_mailbox
    if mailbox is not None:
        context.update(sender_context(campaign.from_name or mailbox.display_name, mailbox.address))
    try:
        thread_subject = None
        if step.position > 1 and step.reply_to_thread and not variant.subject.strip():
            thread_subject = first_subject(enrollment, context)
        return render_step(
            variant,
            context,
            seed=step_seed(enrollment.lead_id, step.position),
            unsubscribe_url=unsubscribe_url or make_unsubscribe_url(message.pk or 0),
            postal_address=campaign.postal_address,
            thread_subject=thread_subject,
        )
    except RenderError as exc:
        # Named as `campaign validate` names it, so the operator finds the variant to fix.
        raise RenderError(f"step {step.position} variant {variant.label}: {exc}") from None


def step_seed(lead_id: int | None, position: int) -> str:
    """Spintax seed: per lead and step, so every render of one message is the same."""
    return f"lead:{lead_id}:step:{position}"


def variant_seed(enrollment_id: int | None, step_id: int | None) -> str:
    """A/B seed: per enrollment and step (the scheduler's)."""
    return f"{enrollment_id}:{step_id}"


def first_subject(enrollment: Enrollment, context: Mapping[str, Any]) -> str:
    """The rendered subject of the thread's first message (sent or to be sent)."""
    first = None
    if enrollment.pk is not None:
        first = (
            Message.objects.filter(enrollment=enrollment, step__position=1)
            .select_related("variant")
            .first()
        )
    if first is not None and first.subject:
        return first.subject
    if first is not None and first.variant is not None:
        variant = first.variant
    else:
        step = Step.objects.get(campaign_id=enrollment.campaign_id, position=1)
        variant = choose_variant(list(step.variants.all()), variant_seed(enrollment.pk, step.pk))
    return one_line(
        render_source(variant.subject, context, f"{step_seed(enrollment.lead_id, 1)}:subject")
    )


def one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def text_to_html(body_text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", body_text) if p.strip()]
    return "".join(
        "<p>" + html.escape(p.strip()).replace("\n", "<br>\n") + "</p>\n" for p in paragraphs
    )


def render_source(
    source: str, context: Mapping[str, Any], seed: str, *, html: bool = False, part: str = ""
) -> str:
    return _render_spun(_spin(source, seed, part=part), context, html=html, part=part)


def _spin(source: str, seed: str, *, part: str = "") -> str:
    try:
        return spintax.spin(source, seed)
    except spintax.SpintaxError as exc:
        raise RenderError(str(exc), part=part) from None


def _render_spun(spun: str, context: Mapping[str, Any], *, html: bool, part: str = "") -> str:
    try:
        template = compile_source(spun, html)
    except RenderError as exc:
        raise RenderError(str(exc), part=part, line=exc.line) from None
    try:
        return sandbox.render(template, context)
    except sandbox.TemplateFailure as exc:
        raise RenderError(str(exc), part=part, line=exc.line) from None


# --- the text part of an HTML-only variant --------------------------------------------------
#
# The text part is html_to_text's reading of the rendered HTML, and reading HTML costs more
# than rendering it. When the template's only Jinja tags are plain output expressions, its
# *source* is read once instead: each expression stands in as an inert word while the markup
# is read and comes back as itself, giving a text template rendered per message like the HTML.
# Lead values then reach the text part as they are, which is what reading their escaped HTML
# gives back. Anything else (statements, `safe`, whitespace control, a link address that is an
# expression, an expression the reading dropped or moved) reads each rendered message.

_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_PLAIN_OUTPUT = re.compile(
    r"""\{\{\s*[A-Za-z_][\w.]*
        (?:\s*\|\s*(?:default|d|title|upper|lower|capitalize|trim)
           (?:\(\s*(?:"[^"{}<>&\\]*"|'[^'{}<>&\\]*')?\s*\))?
        )*\s*\}\}""",
    re.VERBOSE,
)

_HREF_FROM_DATA = re.compile(r"""\bhref\s*=\s*["']?\s*\{\{""", re.IGNORECASE)


def _text_of_html(html_source: str, body_html: str, context: Mapping[str, Any]) -> str:
    template = _text_template(html_source)
    if template is None:
        return html_to_text(body_html)
    try:
        return sandbox.render(template, context).strip()
    except sandbox.TemplateFailure as exc:  # pragma: no cover - the HTML rendered already
        raise RenderError(str(exc)) from None


@lru_cache(maxsize=1024)
def _text_template(html_source: str) -> Template | None:
    """The text-part template read from an HTML template's source, or None when it must be
    read per rendered message (see above)."""
    expressions = _TAG.findall(html_source)
    if not all(_PLAIN_OUTPUT.fullmatch(e) for e in expressions):
        return None
    if any(opener in _TAG.sub("", html_source) for opener in ("{{", "{%", "{#")):
        return None
    if _HREF_FROM_DATA.search(html_source):
        # A link whose text is its address reads as the address alone: whether it is can
        # only be told once the address is rendered.
        return None
    marker = "jinjaexpr"
    while marker in html_source.lower():
        marker += "x"
    # One word per distinct expression: the same value twice (a link whose text is its
    # address) reads as it would rendered.
    words = {e: f"{marker}{i}q" for i, e in enumerate(dict.fromkeys(expressions))}
    read = html_to_text(_TAG.sub(lambda m: words[m.group(0)], html_source))
    back = {word: e for e, word in words.items()}
    found = re.findall(rf"{marker}\d+q", read)
    if [back.get(w) for w in found] != expressions:
        return None
    if any(opener in read for opener in ("{{", "{%", "{#")):
        return None  # literal braces written as entities: text, not template syntax
    # Each value's whitespace runs become one space, as they read in the HTML.
    source = re.sub(
        rf"{marker}\d+q", lambda m: "{{ (" + back[m.group(0)][2:-2] + ") | one_spaced }}", read
    )
    try:
        return _derived_text_env.from_string(source)
    except TemplateSyntaxError:  # pragma: no cover - only expressions that parsed as HTML
        return None


@lru_cache(maxsize=1024)
def compile_source(source: str, html: bool) -> Template:
    env = _html_env if html else _text_env
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise RenderError(
            f"template syntax error on line {exc.lineno}: {exc.message}", line=exc.lineno
        ) from None


def _html_footer(body_html: str, link: str, postal_address: str) -> str:
    address = "<br>".join(html.escape(line.strip()) for line in postal_address.splitlines())
    footer = (
        '\n<p style="margin-top:24px;font-size:12px;color:#777">'
        f"{address}<br>"
        f'<a href="{html.escape(link)}">Unsubscribe</a> if you would rather not hear from us.'
        "</p>\n"
    )
    ends = [m.start() for m in _BODY_END.finditer(body_html)]
    if not ends:
        return body_html.rstrip() + footer
    return body_html[: ends[-1]] + footer + body_html[ends[-1] :]


def _text_footer(body_text: str, link: str, postal_address: str) -> str:
    address = "\n".join(line.strip() for line in postal_address.splitlines())
    return f"{body_text.rstrip()}\n\n--\n{address}\nUnsubscribe: {link}\n"
