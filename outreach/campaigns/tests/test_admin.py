"""The admin's campaign actions go through the lifecycle (and its validation)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from outreach.campaigns.models import Campaign

pytestmark = pytest.mark.django_db


def act(client: Client, action: str, campaign: Campaign) -> None:
    client.post(
        "/admin/campaigns/campaign/",
        {"action": f"{action}_campaigns", "_selected_action": [campaign.pk]},
        follow=True,
    )


def test_it_starts_pauses_and_stops_from_the_admin(campaign: Campaign) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("op", "op@example.com", "pw-123456"))
    act(client, "start", campaign)
    assert Campaign.objects.get().state == Campaign.State.ACTIVE
    act(client, "pause", campaign)
    assert Campaign.objects.get().state == Campaign.State.PAUSED
    act(client, "stop", campaign)
    assert Campaign.objects.get().state == Campaign.State.STOPPED


def test_it_refuses_to_start_an_invalid_campaign_from_the_admin(campaign: Campaign) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(postal_address="")
    client = Client()
    client.force_login(User.objects.create_superuser("op", "op@example.com", "pw-123456"))
    response = client.post(
        "/admin/campaigns/campaign/",
        {"action": "start_campaigns", "_selected_action": [campaign.pk]},
        follow=True,
    )
    assert "postal address" in response.content.decode()
    assert Campaign.objects.get().state == Campaign.State.DRAFT
