"""Which alerts are still open for the operator: one rule for the overview, the alerts page
and anyone who counts them.

Digests and info notices (a mailbox graduated, a provider recovered) are news, not something
to act on: they are delivered like every alert but never count as open.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from outreach.alerts.models import Alert
from outreach.alerts.outbox import Kind

NOTICE_KINDS = (Kind.DIGEST,)


def notice() -> Q:
    """The alerts that are news, not a call to act."""
    return Q(severity=Alert.Severity.INFO) | Q(kind__in=NOTICE_KINDS)


def open_alerts() -> QuerySet[Alert]:
    """Unacknowledged alerts that ask for action, newest first."""
    return (
        Alert.objects.filter(acknowledged_at__isnull=True)
        .exclude(notice())
        .order_by("-created_at", "-id")
    )
