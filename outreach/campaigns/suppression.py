"""The suppression list: checked when a lead is enrolled and again at the moment of sending."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from outreach.campaigns.models import Suppression


def normalize(value: str) -> str:
    return value.strip().lower()


def is_suppressed(email: str) -> bool:
    """True when the address or its whole domain is on the list."""
    email = normalize(email)
    domain = email.rpartition("@")[2]
    return (
        Suppression.objects.filter(kind=Suppression.Kind.ADDRESS, value=email).exists()
        or Suppression.objects.filter(kind=Suppression.Kind.DOMAIN, value=domain).exists()
    )


def suppressed_among(emails: list[str]) -> set[str]:
    """Of ``emails``, those :func:`is_suppressed` says are suppressed (normalized), in two
    queries whatever their number."""
    normalized = {normalize(e) for e in emails}
    domains = {e.rpartition("@")[2] for e in normalized}
    addresses = set(
        Suppression.objects.filter(kind=Suppression.Kind.ADDRESS, value__in=normalized).values_list(
            "value", flat=True
        )
    )
    blocked = set(
        Suppression.objects.filter(kind=Suppression.Kind.DOMAIN, value__in=domains).values_list(
            "value", flat=True
        )
    )
    return {e for e in normalized if e in addresses or e.rpartition("@")[2] in blocked}


def suppress(
    value: str,
    source: str,
    *,
    kind: str = Suppression.Kind.ADDRESS,
    reason: str = "",
    created_by: str = "",
) -> bool:
    """Add ``value`` to the list; False when it was already there (the first entry stays)."""
    value = normalize(value)
    if Suppression.objects.filter(kind=kind, value=value).exists():
        return False
    try:
        with transaction.atomic():
            Suppression.objects.create(
                kind=kind, value=value, source=source, reason=reason, created_by=created_by
            )
    except IntegrityError:  # a concurrent writer got there first
        return False
    return True


@dataclass(frozen=True)
class Entry:
    """One address (or domain) to add to the list, with where it comes from and why."""

    value: str
    source: str
    reason: str = ""
    kind: str = Suppression.Kind.ADDRESS


def suppress_many(entries: list[Entry], *, created_by: str = "") -> int:
    """:func:`suppress` for each of ``entries`` in order, in two statements: the first entry
    for a value stays, whether it was on the list already or comes earlier in ``entries``.
    Returns how many were added (a concurrent writer's entry wins silently)."""
    first: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        first.setdefault((entry.kind, normalize(entry.value)), entry)
    if not first:
        return 0
    listed = set(
        Suppression.objects.filter(
            kind__in={kind for kind, _ in first}, value__in={value for _, value in first}
        ).values_list("kind", "value")
    )
    new = [
        Suppression(kind=kind, value=value, source=e.source, reason=e.reason, created_by=created_by)
        for (kind, value), e in first.items()
        if (kind, value) not in listed
    ]
    Suppression.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)
