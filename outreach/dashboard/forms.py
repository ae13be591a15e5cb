"""Forms of the dashboard: its actions, each asking for the reason that goes into the audit
log, and the filters of its lists, through which every query string passes (bad input is a
400 page naming the parameter, never a 500)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.utils.dateparse import parse_datetime

from outreach.alerts.models import Alert
from outreach.campaigns.models import Campaign, Suppression
from outreach.dashboard.actions import MAILBOX_ACTIONS, UNKNOWN_DECISIONS
from outreach.events.models import Event
from outreach.pool.models import Mailbox

# Primary keys are 64-bit on both databases; a larger number cannot name a row (and SQLite
# refuses to bind it).
MAX_ID = 2**63 - 1


def _reason() -> forms.CharField:
    return forms.CharField(
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "reason (goes into the audit log)"}),
    )


class MailboxActionForm(forms.Form):
    action = forms.ChoiceField(choices=list(MAILBOX_ACTIONS.items()))
    reason = _reason()
    cooldown_days = forms.IntegerField(min_value=1, max_value=365, required=False)


class UnknownMessageForm(forms.Form):
    decision = forms.ChoiceField(choices=list(UNKNOWN_DECISIONS.items()))
    reason = _reason()


class SuppressionAddForm(forms.Form):
    value = forms.CharField(max_length=254)
    kind = forms.ChoiceField(choices=Suppression.Kind.choices, initial=Suppression.Kind.ADDRESS)
    reason = _reason()


class ReasonForm(forms.Form):
    reason = _reason()


class CampaignStateForm(forms.Form):
    action = forms.ChoiceField(choices=[("pause", "Pause"), ("resume", "Resume")])


def _id() -> forms.IntegerField:
    return forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)


class CursorField(forms.CharField):
    """Keyset pagination cursor "<iso instant>~<id>": pages stay fast at any depth, where
    OFFSET would scan every skipped row. Cleans to ``(instant, id)`` or None."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, max_length=64, **kwargs)

    def to_python(self, value: Any) -> tuple[datetime, int] | None:  # type: ignore[override]
        raw = super().to_python(value)
        if not raw:
            return None
        at, _, pk = raw.rpartition("~")
        try:
            when = parse_datetime(at) if at else None
        except ValueError:  # well-formed but impossible, as 2020-02-30
            when = None
        if when is None or not pk.isdigit() or not 1 <= int(pk) <= MAX_ID:
            raise forms.ValidationError("not a page cursor (expected <ISO instant>~<id>)")
        return when, int(pk)


class EventFilterForm(forms.Form):
    type = forms.ChoiceField(choices=[("", "any type"), *Event.Type.choices], required=False)
    mailbox = _id()
    campaign = _id()
    recipient = forms.CharField(required=False, max_length=254)
    before = CursorField()


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    mailbox = _id()
    before = CursorField()


class MailboxFilterForm(forms.Form):
    state = forms.ChoiceField(choices=[("", "any state"), *Mailbox.State.choices], required=False)


class SuppressionFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=254)


class AlertFilterForm(forms.Form):
    # open: unacknowledged and asking for action (outreach.alerts.inbox); notices: digests
    # and info; acknowledged; all.
    show = forms.ChoiceField(
        choices=[(s, s) for s in ("open", "notices", "acknowledged", "all")], required=False
    )
    severity = forms.ChoiceField(choices=[("", "any"), *Alert.Severity.choices], required=False)
    kind = forms.RegexField(regex=r"^[a-z_]{1,50}$", required=False, max_length=50)
    before = CursorField()


class AlertAckForm(forms.Form):
    """Acknowledge a selection of alerts, or every open alert of one kind."""

    alert = forms.TypedMultipleChoiceField(coerce=int, required=False, choices=[])
    kind = forms.RegexField(regex=r"^[a-z_]{1,50}$", required=False, max_length=50)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Any id is a valid choice (an alert acknowledged meanwhile is simply skipped); the
        # type check rejects what is not an id.
        self.fields["alert"].valid_value = lambda value: str(value).isdigit()  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("alert") and not data.get("kind"):
            raise forms.ValidationError("select alerts, or name a kind to acknowledge")
        if any(not 1 <= pk <= MAX_ID for pk in data.get("alert") or []):
            raise forms.ValidationError("not an alert id")
        return data


class LeadImportForm(forms.Form):
    file = forms.FileField()
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.order_by("slug"), to_field_name="slug", required=False
    )
    dry_run = forms.BooleanField(required=False)


class BulkMailboxForm(forms.Form):
    """Pause or resume a selection of mailboxes, with one reason for the audit log."""

    mailbox = forms.ModelMultipleChoiceField(
        queryset=Mailbox.objects.select_related("domain"),
        error_messages={"required": "select at least one mailbox"},
    )
    action = forms.ChoiceField(choices=[("pause", "Pause"), ("resume", "Resume")])
    reason = _reason()


class OverviewForm(forms.Form):
    trend = forms.TypedChoiceField(
        choices=[("30", "30 days"), ("90", "90 days")], coerce=int, required=False
    )

    def clean_trend(self) -> int:
        return self.cleaned_data["trend"] or 30


class PlanForm(forms.Form):
    target = forms.IntegerField(min_value=1, max_value=1_000_000)
    by = forms.DateField(required=False)
    per_domain = forms.IntegerField(min_value=1, max_value=20, required=False)
