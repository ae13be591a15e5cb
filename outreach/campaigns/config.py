"""Campaigns as files: ``outreach campaign apply FILE.toml`` creates or updates one campaign.

:func:`parse` checks the file strictly (an unknown key, a bad window, a step without content
is a :class:`ConfigError` naming the key) without touching the database; :func:`apply` writes
the difference in one transaction and returns what changed, so applying the same file twice
reports nothing the second time. The campaign's state is never changed by a file: start, pause
and stop are commands. See docs/campaigns.md for every key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction

from outreach.campaigns.models import Campaign, Message, Step, Variant
from outreach.campaigns.validation import Problem
from outreach.lib import tomlcheck
from outreach.pool.models import Domain, Mailbox

DAY_NAMES = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
TOP_KEYS = {
    "slug",
    "name",
    "from_name",
    "postal_address",
    "timezone",
    "daily_cap",
    "allow_warming_mailboxes",
    "allow_shared_leads",
    "opted_in",
    "track_opens",
    "track_clicks",
    "window",
    "senders",
    "stop",
    "steps",
}
WINDOW_KEYS = {"days", "start", "end"}
SENDER_KEYS = {"domains", "mailboxes"}
STOP_KEYS = {"on_reply", "on_company_reply", "suppress_company_on_refusal"}
STEP_KEYS = {"delay_days", "delay_hours", "reply_to_thread", "subject", "html", "text", "variants"}
VARIANT_KEYS = {"label", "weight", "subject", "html", "text"}
# Weights and caps are stored in the database's integer columns (32-bit on PostgreSQL).
MAX_WHOLE = 2**31 - 1
# A follow-up more than a year after the previous step is a typo, and far-off dates overflow.
MAX_DELAY_DAYS = 365
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
LABEL = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


class ConfigError(Exception):
    """A problem in the campaign file; names the key (``key``/``value`` find its line)."""

    def __init__(self, message: str, *, key: str = "", value: Any = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value


class InvalidTemplates(ConfigError):
    """The file's templates do not validate and the campaign is sending: nothing changed."""

    def __init__(self, slug: str, state: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"campaign {slug} is {state} and this file does not validate "
            f"({len(problems)} problem(s)): nothing changed"
        )


@dataclass(frozen=True)
class VariantSpec:
    label: str
    weight: int
    subject: str
    body_html: str
    body_text: str


@dataclass(frozen=True)
class StepSpec:
    position: int
    delay_days: int
    delay_hours: int
    reply_to_thread: bool
    variants: tuple[VariantSpec, ...]


@dataclass(frozen=True)
class CampaignSpec:
    slug: str
    fields: dict[str, Any]
    domains: tuple[str, ...]
    mailboxes: tuple[str, ...]
    steps: tuple[StepSpec, ...] = field(default=())
    # Where each template is in the file: (step, variant label, part) -> (line of its key,
    # line its text starts on). Filled when the file is laid out as docs/campaigns.md shows.
    lines: dict[tuple[int, str, str], tuple[int, int]] = field(default_factory=dict, compare=False)
    path: str = ""


# --- parsing ---------------------------------------------------------------------------------


def load(path: str | Path) -> CampaignSpec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return replace(parse(text), path=str(path))


def parse(text: str) -> CampaignSpec:
    """The campaign described by ``text``; raises ConfigError naming the key (and its line,
    when it can be found) of the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    try:
        return _parse(text, data)
    except ConfigError as exc:
        line = tomlcheck.line_of(text, exc.key, exc.value) if exc.key else None
        if line is None:
            raise
        raise ConfigError(f"{exc} (line {line})", key=exc.key, value=exc.value) from None


def _parse(text: str, data: dict[str, Any]) -> CampaignSpec:
    oversized = tomlcheck.oversized_integer(data)
    if oversized:
        key, value = oversized
        raise ConfigError(
            f"{key}: {value} does not fit in 64 bits (TOML integers are 64-bit)",
            key=key,
            value=value,
        )
    _known(data, TOP_KEYS, "")
    slug, fields, senders = _campaign_fields(data)
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConfigError("steps: at least one [[steps]] is needed")
    steps = tuple(_step(raw, n) for n, raw in enumerate(raw_steps, start=1))
    lines = _step_lines(text, steps, raw_steps)
    return CampaignSpec(
        slug=slug,
        fields=fields,
        domains=tuple(_str_list(senders, "domains", "senders.")),
        mailboxes=tuple(_str_list(senders, "mailboxes", "senders.")),
        steps=steps,
        lines=lines,
    )


def _campaign_fields(data: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The campaign's slug, its model fields, and its ``[senders]`` table, checked."""
    slug = _str(data, "slug", "", required=True)
    if not SLUG.match(slug):
        raise ConfigError(f"slug: {slug!r} must be lower-case letters, digits, - and _")
    timezone = _str(data, "timezone", "", default="UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone: unknown time zone {timezone!r}") from None
    postal = _str(data, "postal_address", "", required=True).strip()
    if not postal:
        raise ConfigError("postal_address: required (every message's footer carries it)")
    daily_cap = data.get("daily_cap")
    if daily_cap is not None:
        daily_cap = _whole(data, "daily_cap", "", minimum=1, maximum=MAX_WHOLE)
    window = _table(data, "window")
    _known(window, WINDOW_KEYS, "window.")
    stop = _table(data, "stop")
    _known(stop, STOP_KEYS, "stop.")
    if stop.get("on_reply", True) is not True:
        raise ConfigError("stop.on_reply: a reply always stops the sequence; it cannot be false")
    senders = _table(data, "senders")
    _known(senders, SENDER_KEYS, "senders.")
    window_start, window_end = _time(window, "start", "09:00"), _time(window, "end", "17:00")
    if window_start >= window_end:
        raise ConfigError("window: start must be before end")
    fields: dict[str, Any] = {
        "name": _str(data, "name", "", default=slug),
        "from_name": _str(data, "from_name", "", default=""),
        "postal_address": postal,
        "timezone": timezone,
        "daily_cap": daily_cap,
        "allow_warming_mailboxes": _bool(data, "allow_warming_mailboxes", ""),
        "allow_shared_leads": _bool(data, "allow_shared_leads", ""),
        "opted_in": _bool(data, "opted_in", ""),
        "stop_on_company_reply": _bool(stop, "on_company_reply", "stop."),
        "suppress_company_on_refusal": _bool(stop, "suppress_company_on_refusal", "stop."),
        "track_opens": _bool(data, "track_opens", ""),
        "track_clicks": _bool(data, "track_clicks", ""),
        "window_days": _days(window.get("days", ["mon", "tue", "wed", "thu", "fri"])),
        "window_start": window_start,
        "window_end": window_end,
    }
    return slug, fields, senders


def _step_lines(
    text: str, steps: tuple[StepSpec, ...], raw_steps: list[Any]
) -> dict[tuple[int, str, str], tuple[int, int]]:
    """Where each step's and variant's templates start in the file, for error messages."""
    found = _template_lines(text)
    return {
        (step.position, variant.label, part): where
        for step, raw in zip(steps, raw_steps, strict=True)
        for index, variant in enumerate(step.variants, start=1 if "variants" in raw else 0)
        for (position, at, part), where in found.items()
        if (position, at) == (step.position, index)
    }


_TABLE = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?")
_TEMPLATE_KEY = re.compile(r"""^\s*(subject|html|text)\s*=\s*("{3}|'{3})?""")


def _template_lines(text: str) -> dict[tuple[int, int, str], tuple[int, int]]:
    """Where the templates are: (step, variant (0: on the step itself), part) -> (line of the
    key, line the text starts on). A line scan, since tomllib keeps no positions: it follows
    ``[[steps]]`` and ``[[steps.variants]]`` headers and skips multi-line strings."""
    found: dict[tuple[int, int, str], tuple[int, int]] = {}
    step = variant = 0
    table = ""
    closing = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if closing:
            if closing in line:
                closing = ""
            continue
        header = _TABLE.match(line)
        if header:
            table = header.group(1)
            if table == "steps":
                step, variant = step + 1, 0
            elif table == "steps.variants":
                variant += 1
            continue
        key = _TEMPLATE_KEY.match(line)
        if key and table in ("steps", "steps.variants"):
            quotes = key.group(2) or ""
            rest = line[key.end() :]
            starts = number
            if quotes and quotes not in rest:
                closing = quotes
                # TOML drops a newline right after the opening quotes.
                starts = number + 1 if not rest.strip() else number
            found[(step, variant, key.group(1))] = (number, starts)
    return found


def _step(raw: Any, position: int) -> StepSpec:
    where = f"steps[{position}]."
    if not isinstance(raw, dict):
        raise ConfigError(f"steps[{position}]: must be a table")
    _known(raw, STEP_KEYS, where)
    variants_raw = raw.get("variants")
    inline = {k: raw[k] for k in ("subject", "html", "text") if k in raw}
    if variants_raw is not None and inline:
        raise ConfigError(f"{where}: give subject/html/text or [[steps.variants]], not both")
    if variants_raw is None:
        variants_raw = [{"label": "A", **inline}]
    if not isinstance(variants_raw, list) or not variants_raw:
        raise ConfigError(f"{where}variants: at least one variant")
    variants = []
    for index, item in enumerate(variants_raw, start=1):
        vwhere = f"{where}variants[{index}]."
        if not isinstance(item, dict):
            raise ConfigError(f"{vwhere}: must be a table")
        _known(item, VARIANT_KEYS, vwhere)
        label = _str(item, "label", vwhere, default=chr(ord("A") + index - 1))
        if not LABEL.match(label):
            raise ConfigError(f"{vwhere}label: {label!r} is not a short label")
        weight = _whole(item, "weight", vwhere, default=1, maximum=MAX_WHOLE)
        html, text = _str(item, "html", vwhere, default=""), _str(item, "text", vwhere, default="")
        if not html.strip() and not text.strip():
            raise ConfigError(f"{vwhere}: needs html or text")
        subject = _str(item, "subject", vwhere, default="")
        if not subject.strip() and position == 1:
            raise ConfigError(f"{vwhere}subject: the first step needs a subject")
        variants.append(VariantSpec(label, weight, subject, html, text))
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}variants: labels must be unique")
    if sum(v.weight for v in variants) == 0:
        raise ConfigError(f"{where}variants: at least one weight must be above 0")
    delay_days = _whole(raw, "delay_days", where, maximum=MAX_DELAY_DAYS)
    delay_hours = _whole(raw, "delay_hours", where, maximum=MAX_DELAY_DAYS * 24)
    if position > 1 and delay_days == 0 and delay_hours == 0:
        raise ConfigError(f"{where}delay_days: a follow-up needs a delay after the previous step")
    return StepSpec(
        position=position,
        delay_days=delay_days,
        delay_hours=delay_hours,
        reply_to_thread=_bool(raw, "reply_to_thread", where, default=True),
        variants=tuple(variants),
    )


def _whole(
    data: dict[str, Any],
    key: str,
    where: str,
    *,
    default: int = 0,
    minimum: int = 0,
    maximum: int,
) -> int:
    """A whole number between ``minimum`` and ``maximum``; ``true`` is not one (Python
    counts a bool as an int, TOML does not)."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"{where}{key}: expected a whole number, got {value!r}", key=key, value=value
        )
    if not minimum <= value <= maximum:
        raise ConfigError(
            f"{where}{key}: expected a whole number from {minimum} to {maximum}, got {value}",
            key=key,
            value=value,
        )
    return value


def _known(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: must be a table")
    return value


def _str(
    data: dict[str, Any],
    key: str,
    where: str,
    *,
    default: str | None = None,
    required: bool = False,
) -> str:
    if key not in data:
        if required or default is None:
            raise ConfigError(f"{where}{key}: required")
        return default
    value = data[key]
    if not isinstance(value, str):
        raise ConfigError(f"{where}{key}: must be a string")
    return value


def _bool(data: dict[str, Any], key: str, where: str, *, default: bool = False) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}{key}: must be true or false")
    return value


def _str_list(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}{key}: must be a list of strings")
    return [v.strip().lower() for v in value]


def _days(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ConfigError("window.days: a non-empty list such as ['mon', 'tue'] or [1, 2]")
    days = set()
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= 7:
            days.add(item)
        elif isinstance(item, str) and item.strip().lower()[:3] in DAY_NAMES:
            days.add(DAY_NAMES[item.strip().lower()[:3]])
        else:
            raise ConfigError(f"window.days: {item!r} is not a day (mon..sun or 1..7)")
    return sorted(days)


def _time(data: dict[str, Any], key: str, default: str) -> time:
    value = data.get(key, default)
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f'window.{key}: a time of day such as "09:00"')


# --- applying --------------------------------------------------------------------------------


def apply(spec: CampaignSpec) -> list[str]:
    """Make the database match ``spec``; returns one line per change (empty: nothing to do).

    Steps and variants are matched by position and label and updated in place; one that is
    gone from the file is deleted, unless messages were already made from it. A campaign that
    is sending (active or paused) only takes a file that validates: otherwise
    :class:`InvalidTemplates` is raised and nothing changes. A draft takes any file; see
    :func:`problems` for what would stop it from starting.
    """
    changes: list[str] = []
    domains = list(Domain.objects.filter(name__in=spec.domains))
    missing = set(spec.domains) - {d.name for d in domains}
    if missing:
        raise ConfigError(f"senders.domains: unknown domain {sorted(missing)[0]}")
    mailboxes = list(Mailbox.objects.filter(address__in=spec.mailboxes))
    missing = set(spec.mailboxes) - {m.address for m in mailboxes}
    if missing:
        raise ConfigError(f"senders.mailboxes: unknown mailbox {sorted(missing)[0]}")
    with transaction.atomic():
        campaign = Campaign.objects.filter(slug=spec.slug).first()
        if campaign is None:
            campaign = Campaign.objects.create(slug=spec.slug, **spec.fields)
            changes.append(f"campaign {spec.slug}: created (draft)")
        else:
            changed = [k for k, v in spec.fields.items() if getattr(campaign, k) != v]
            if changed:
                for key in changed:
                    setattr(campaign, key, spec.fields[key])
                campaign.save(update_fields=changed)
                changes.append(f"campaign {spec.slug}: {', '.join(changed)} changed")
        if {d.pk for d in campaign.allowed_domains.all()} != {d.pk for d in domains}:
            campaign.allowed_domains.set(domains)
            changes.append(f"campaign {spec.slug}: sending domains changed")
        if {m.pk for m in campaign.allowed_mailboxes.all()} != {m.pk for m in mailboxes}:
            campaign.allowed_mailboxes.set(mailboxes)
            changes.append(f"campaign {spec.slug}: sending mailboxes changed")
        changes.extend(_apply_steps(campaign, spec.steps))
        if changes and campaign.state in SENDING_STATES:
            found = problems(spec, campaign)
            if found:
                raise InvalidTemplates(spec.slug, campaign.state, found)  # rolls back
    return changes


# A campaign in these states has messages to render: a broken file is refused.
SENDING_STATES = (Campaign.State.ACTIVE, Campaign.State.PAUSED)


def problems(spec: CampaignSpec, campaign: Campaign | None = None) -> list[str]:
    """What would stop the campaign of ``spec`` from sending, as it is in the database: its
    templates rendered for one lead of each set of filled fields (a sample lead when none is
    enrolled), each line starting with the file and line of the template at fault."""
    from outreach.campaigns.validation import campaign_problems

    campaign = campaign or Campaign.objects.filter(slug=spec.slug).first()
    if campaign is None:
        return []
    return [_located(p, spec) for p in campaign_problems(campaign, every_lead=False)]


def _located(problem: Problem, spec: CampaignSpec) -> str:
    where = spec.lines.get((problem.step or 0, problem.variant, problem.part))
    line = None
    if where is not None:
        key_line, starts = where
        line = starts + problem.line - 1 if problem.line else key_line
    name = spec.path or "campaign file"
    return f"{name}:{line}: {problem}" if line else f"{name}: {problem}"


def _apply_steps(campaign: Campaign, specs: tuple[StepSpec, ...]) -> list[str]:
    changes = []
    existing = {step.position: step for step in campaign.steps.all()}
    for spec in specs:
        step = existing.pop(spec.position, None)
        values = {
            "delay_days": spec.delay_days,
            "delay_hours": spec.delay_hours,
            "reply_to_thread": spec.reply_to_thread,
        }
        if step is None:
            step = Step.objects.create(campaign=campaign, position=spec.position, **values)
            changes.append(f"step {spec.position}: created")
        else:
            changed = [k for k, v in values.items() if getattr(step, k) != v]
            if changed:
                for key in changed:
                    setattr(step, key, values[key])
                step.save(update_fields=changed)
                changes.append(f"step {spec.position}: {', '.join(changed)} changed")
        changes.extend(_apply_variants(step, spec.variants))
    for position, step in sorted(existing.items()):
        if Message.objects.filter(step=step).exists():
            raise ConfigError(
                f"steps: step {position} already has messages and cannot be removed; "
                "stop the campaign and create a new one instead"
            )
        step.delete()
        changes.append(f"step {position}: removed")
    return changes


def _apply_variants(step: Step, specs: tuple[VariantSpec, ...]) -> list[str]:
    changes = []
    existing = {variant.label: variant for variant in step.variants.all()}
    for spec in specs:
        values = {
            "weight": spec.weight,
            "subject": spec.subject,
            "body_html": spec.body_html,
            "body_text": spec.body_text,
        }
        variant = existing.pop(spec.label, None)
        if variant is None:
            Variant.objects.create(step=step, label=spec.label, **values)
            changes.append(f"step {step.position} variant {spec.label}: created")
            continue
        changed = [k for k, v in values.items() if getattr(variant, k) != v]
        if changed:
            for key in changed:
                setattr(variant, key, values[key])
            variant.save(update_fields=changed)
            changes.append(
                f"step {step.position} variant {spec.label}: {', '.join(changed)} changed"
            )
    for label, variant in sorted(existing.items()):
        if Message.objects.filter(variant=variant).exists():
            # Messages point at it: keep it, but never choose it again.
            if variant.weight != 0:
                variant.weight = 0
                variant.save(update_fields=["weight"])
                changes.append(f"step {step.position} variant {label}: retired (weight 0)")
            continue
        variant.delete()
        changes.append(f"step {step.position} variant {label}: removed")
    return changes
