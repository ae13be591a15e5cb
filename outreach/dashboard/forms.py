"""Forms of the dashboard's actions: every one asks for the reason that goes into the audit log."""

from __future__ import annotations

from django import forms

from outreach.campaigns.models import Campaign, Suppression
from outreach.dashboard.actions import MAILBOX_ACTIONS, UNKNOWN_DECISIONS
from outreach.events.models import Event


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


class EventFilterForm(forms.Form):
    type = forms.ChoiceField(choices=[("", "any type"), *Event.Type.choices], required=False)
    mailbox = forms.IntegerField(required=False, min_value=1)
    campaign = forms.IntegerField(required=False, min_value=1)
    recipient = forms.CharField(required=False, max_length=254)
    before = forms.CharField(required=False, max_length=64)


class LeadImportForm(forms.Form):
    file = forms.FileField()
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.order_by("slug"), to_field_name="slug", required=False
    )
    dry_run = forms.BooleanField(required=False)
