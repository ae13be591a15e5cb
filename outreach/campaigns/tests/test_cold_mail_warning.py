"""Cold mail through SES, Mailgun or Postmark, whose own policies forbid it: `outreach doctor`
and `outreach campaign start` say so in plain words; `opted_in = true` silences them."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from outreach.campaigns.cold_mail import warning_for
from outreach.campaigns.models import Campaign
from outreach.pool.models import Domain, ProviderAccount
from outreach.testing import make_campaign, make_pool

pytestmark = pytest.mark.django_db


def test_it_warns_only_for_opt_in_only_providers_of_a_cold_campaign() -> None:
    ses = warning_for("intro", False, [("aws", "ses"), ("workspace", "google")])
    assert ses is not None
    assert "aws is ses" in ses and "unsolicited mass mail" in ses
    assert "workspace" not in ses
    assert warning_for("intro", True, [("aws", "ses")]) is None
    assert warning_for("intro", False, [("workspace", "google"), ("m365", "microsoft")]) is None
    postmark = warning_for("intro", False, [("pm", "postmark"), ("mg", "mailgun")])
    assert postmark and "no bulk or cold mail" not in postmark
    assert "does not accept bulk or cold mail" in postmark and "consent" in postmark


def _doctor() -> dict[str, object]:
    out = StringIO()
    try:
        call_command("doctor", "--json", stdout=out)
    except SystemExit:
        pass
    return json.loads(out.getvalue())


def _cold_findings(report: dict[str, object]) -> list[dict[str, str]]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return [f for f in findings if f["area"].startswith("campaign ")]


def test_doctor_and_start_warn_about_a_campaign_that_fails_over_to_ses() -> None:
    workspace = ProviderAccount.objects.create(name="workspace", kind="google")
    ses = ProviderAccount.objects.create(name="aws", kind="ses")
    workspace.standby = ses  # failover would carry the cold mail to SES
    workspace.save()
    make_pool(1, 1, provider=workspace)
    campaign = make_campaign("intro")

    (finding,) = _cold_findings(_doctor())
    out = StringIO()
    call_command("campaign", "start", "intro", stdout=out)

    assert finding["severity"] == "warning" and "aws is ses" in finding["message"]
    assert "google and microsoft" in finding["fix"] and "opted_in = true" in finding["fix"]
    assert "warning: campaign intro can send cold mail" in out.getvalue()
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.ACTIVE  # a warning, not a refusal


def test_opted_in_silences_the_warning_and_other_mailboxes_do_not_count() -> None:
    workspace = ProviderAccount.objects.create(name="workspace", kind="google")
    postmark = ProviderAccount.objects.create(name="pm", kind="postmark")
    make_pool(2, 1, provider=workspace)
    Domain.objects.filter(name="send2.example.com").update(provider=postmark)
    cold = make_campaign("cold")
    cold.allowed_domains.set(Domain.objects.filter(name="send1.example.com"))
    newsletter = make_campaign("newsletter")
    newsletter.opted_in = True
    newsletter.save()

    assert _cold_findings(_doctor()) == []
    out = StringIO()
    call_command("campaign", "start", "newsletter", stdout=out)
    assert "warning" not in out.getvalue()
