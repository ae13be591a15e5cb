"""Retention of the failed-login records django-axes keeps (one row per failure, and one per
user name and address tried): without it, guessing random user names would grow the database
without bound, as refused webhooks once did."""

from __future__ import annotations

from datetime import datetime, timedelta

from axes.models import AccessAttempt, AccessFailureLog
from django.utils import timezone

# Long enough to read a month of failures on the audit page; far past any cool-off.
FAILED_LOGIN_DAYS = 30


def prune_failed_logins(now: datetime | None = None) -> int:
    """Delete failed-login records older than FAILED_LOGIN_DAYS; returns how many failures."""
    limit = (now or timezone.now()) - timedelta(days=FAILED_LOGIN_DAYS)
    deleted, _ = AccessFailureLog.objects.filter(attempt_time__lt=limit).delete()
    AccessAttempt.objects.filter(attempt_time__lt=limit).delete()
    return deleted
