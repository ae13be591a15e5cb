"""Campaign validation: everything that would stop a campaign from sending correctly.

:func:`campaign_problems` checks the settings, then every variant's source (spintax, Jinja2
syntax), then renders every step and variant for the enrolled leads (a sample lead when none
is enrolled yet): undefined variables, sandbox refusals, empty subjects, malformed links and
a missing footer. Each :class:`Problem` reads as one line
(``lead 17 (ann@acme.com): step 2 variant B: 'first_name' is undefined``) and knows the step,
variant, part and template line it comes from, so `campaign apply` can point at its file.

``campaign validate`` and ``campaign start`` render for every enrolled lead; ``campaign
apply`` for one lead of each set of filled fields (what decides whether a variable is
defined), so applying a file to a campaign of 100,000 leads stays quick.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from outreach.campaigns import spintax
from outreach.campaigns.models import Campaign, Step, Variant
from outreach.campaigns.templates import (
    HREF,
    RenderError,
    choose_variant,
    compile_source,
    lead_context,
    one_line,
    render_source,
    render_step,
    sample_context,
    sender_context,
    step_seed,
    variant_seed,
)
from outreach.campaigns.unsubscribe import unsubscribe_url as make_unsubscribe_url

# Enough to show the operator what is wrong without flooding the terminal on 100k leads.
MAX_PROBLEMS = 200


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a campaign: ``where`` and ``text`` make its line; ``step``,
    ``variant``, ``part`` (subject, html, text) and ``line`` (in that part) locate it."""

    text: str
    where: str = ""
    step: int | None = None
    variant: str = ""
    part: str = ""
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.text}" if self.where else self.text


def validate_campaign(campaign: Campaign) -> list[str]:
    """The problems of ``campaign`` rendered for every enrolled lead, one line each; empty
    means it can start."""
    return [str(p) for p in campaign_problems(campaign)]


def campaign_problems(campaign: Campaign, *, every_lead: bool = True) -> list[Problem]:
    """What would stop ``campaign`` from sending correctly (see the module docstring);
    ``every_lead`` False renders one lead per set of filled fields."""
    problems = [Problem(text) for text in _settings_problems(campaign)]
    steps = list(campaign.steps.prefetch_related("variants"))
    if not steps:
        return [*problems, Problem("campaign has no steps")]
    for index, step in enumerate(steps, start=1):
        if step.position != index:
            problems.append(
                Problem(f"steps must be numbered 1, 2, 3...: found step {step.position}")
            )
            break
    variants = {step.position: list(step.variants.all()) for step in steps}
    for step in steps:
        where = f"step {step.position}"
        if not variants[step.position]:
            problems.append(Problem("has no variant", where, step.position))
        elif sum(v.weight for v in variants[step.position]) == 0:
            problems.append(Problem("every variant has weight 0", where, step.position))
        for variant in variants[step.position]:
            problems.extend(_source_problems(step, variant))
    if problems:
        return problems
    link = make_unsubscribe_url(0)
    for who, enrollment_id, lead_id, context in _contexts(campaign, every_lead):
        for step in steps:
            for variant in variants[step.position]:
                where = f"{who}: step {step.position} variant {variant.label}"
                problem = _render_problem(
                    campaign, variants[1], step, variant, (enrollment_id, lead_id), context, link
                )
                if problem is None:
                    continue
                text, part, line = problem
                problems.append(Problem(text, where, step.position, variant.label, part, line))
                if len(problems) >= MAX_PROBLEMS:
                    problems.append(Problem(f"(stopped after {MAX_PROBLEMS} problems)"))
                    return problems
    return problems


def _settings_problems(campaign: Campaign) -> list[str]:
    problems = []
    if not campaign.postal_address.strip():
        problems.append("campaign has no postal address (required in every footer)")
    try:
        ZoneInfo(campaign.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"unknown time zone {campaign.timezone!r}")
    days = campaign.window_days or []
    if not days or any(not isinstance(d, int) or not 1 <= d <= 7 for d in days):
        problems.append("sending window: days must be a non-empty list of 1 (Monday) to 7")
    if str(campaign.window_start) >= str(campaign.window_end):
        problems.append("sending window: start must be before end")
    return problems


def _source_problems(step: Step, variant: Variant) -> list[Problem]:
    where = f"step {step.position} variant {variant.label}"
    at = (where, step.position, variant.label)
    problems = []
    if not variant.subject.strip() and (step.position == 1 or not step.reply_to_thread):
        problems.append(Problem("subject is empty", *at, part="subject"))
    if not variant.body_html.strip() and not variant.body_text.strip():
        problems.append(Problem("body is empty", *at))
    for part, source in (
        ("subject", variant.subject),
        ("html", variant.body_html),
        ("text", variant.body_text),
    ):
        problem, line = spintax.check(source), None
        if problem is None:
            try:
                compile_source(source, part == "html")
            except RenderError as exc:
                problem, line = str(exc), exc.line
        if problem:
            problems.append(
                Problem(problem, f"{where} {part}", step.position, variant.label, part, line)
            )
    return problems


def _contexts(
    campaign: Campaign, every_lead: bool
) -> Iterable[tuple[str, int | None, int | None, dict[str, Any]]]:
    sender = sender_context(campaign.from_name or "Alex Sender", "sender@example.net")
    enrollments = campaign.enrollments.select_related("lead").order_by("pk")
    seen: set[frozenset[str]] = set()
    found = False
    for enrollment in enrollments.iterator(chunk_size=500):
        found = True
        lead = enrollment.lead
        context = lead_context(lead)
        if not every_lead:
            fields = frozenset(context)
            if fields in seen:
                continue
            seen.add(fields)
        context.update(sender)
        yield f"lead {lead.pk} ({lead.email})", enrollment.pk, lead.pk, context
    if not found:
        yield "sample lead", None, None, sample_context()


def _render_problem(
    campaign: Campaign,
    first_variants: list[Variant],
    step: Step,
    variant: Variant,
    ids: tuple[int | None, int | None],
    context: Mapping[str, Any],
    link: str,
) -> tuple[str, str, int | None] | None:
    """What is wrong with this variant rendered for this lead: (text, part, template line)."""
    enrollment_id, lead_id = ids
    try:
        thread_subject = None
        if step.position > 1 and step.reply_to_thread and not variant.subject.strip():
            first_step_id = first_variants[0].step_id
            first = choose_variant(first_variants, variant_seed(enrollment_id, first_step_id))
            thread_subject = one_line(
                render_source(first.subject, context, f"{step_seed(lead_id, 1)}:subject")
            )
        rendered = render_step(
            variant,
            context,
            seed=step_seed(lead_id, step.position),
            unsubscribe_url=link,
            postal_address=campaign.postal_address,
            thread_subject=thread_subject,
        )
    except RenderError as exc:
        return str(exc), exc.part, exc.line
    for match in HREF.finditer(rendered.html):
        href = html.unescape(match.group(1) or match.group(2) or "")
        if not _well_formed_link(href):
            return f"malformed link {href!r}", "html", None
    if link not in rendered.text or html.escape(link) not in rendered.html:
        return "unsubscribe link missing from the footer", "", None
    return None


def _well_formed_link(href: str) -> bool:
    if href.startswith(("mailto:", "tel:")):
        return len(href) > href.index(":") + 1 and " " not in href
    try:
        parts = urlsplit(href)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in href
