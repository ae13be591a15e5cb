"""`validate_campaign`: every step and variant rendered for every enrolled lead."""

from __future__ import annotations

import pytest

from outreach.campaigns import lifecycle
from outreach.campaigns.models import Campaign, Lead, Variant
from outreach.campaigns.validation import validate_campaign
from outreach.testing import make_leads

pytestmark = pytest.mark.django_db


def test_it_accepts_a_good_campaign(campaign: Campaign) -> None:
    lifecycle.enroll(campaign, make_leads(3))
    assert validate_campaign(campaign) == []


def test_it_names_the_lead_step_variant_and_variable_that_fail(campaign: Campaign) -> None:
    leads = make_leads(2)
    Lead.objects.filter(pk=leads[1].pk).update(first_name="")
    lifecycle.enroll(campaign, leads)
    lead = Lead.objects.get(pk=leads[1].pk)
    problems = validate_campaign(campaign)
    assert f"lead {lead.pk} ({lead.email}): step 2 variant B: 'first_name' is undefined" in problems
    # Step 1 uses first_name too, and so does step 2 A through the thread's "Re:" subject.
    assert f"lead {lead.pk} ({lead.email}): step 1 variant A: 'first_name' is undefined" in problems
    assert f"lead {lead.pk} ({lead.email}): step 2 variant A: 'first_name' is undefined" in problems
    assert len(problems) == 3
    with pytest.raises(lifecycle.CampaignInvalid):
        lifecycle.start(campaign)


def test_it_validates_with_a_sample_lead_before_any_enrollment(campaign: Campaign) -> None:
    assert validate_campaign(campaign) == []
    Variant.objects.filter(label="B").update(body_html="{{ industry }}")
    assert validate_campaign(campaign) == ["sample lead: step 2 variant B: 'industry' is undefined"]


def test_it_reports_empty_subjects_bad_syntax_and_spintax(campaign: Campaign) -> None:
    Variant.objects.filter(step__position=1).update(subject=" ")
    Variant.objects.filter(label="B").update(body_html="{% if %}", body_text="{a|b")
    problems = validate_campaign(campaign)
    assert "step 1 variant A: subject is empty" in problems
    assert any(p.startswith("step 2 variant B html: template syntax error") for p in problems)
    assert any(p.startswith("step 2 variant B text: spintax") for p in problems)


def test_it_reports_malformed_links(campaign: Campaign) -> None:
    Variant.objects.filter(label="B").update(
        body_html='<a href="htp:/oops">x</a> <a href="https://ok.example.com/a">y</a>'
    )
    assert validate_campaign(campaign) == [
        "sample lead: step 2 variant B: malformed link 'htp:/oops'"
    ]


def test_it_refuses_a_sandbox_escape_as_a_problem(campaign: Campaign) -> None:
    Variant.objects.filter(label="B").update(body_html="{{ lead.__class__.__mro__ }}")
    [problem] = validate_campaign(campaign)
    assert problem.startswith("sample lead: step 2 variant B:") and "unsafe" in problem


def test_it_reports_settings_problems(campaign: Campaign) -> None:
    campaign.postal_address = ""
    campaign.window_days = []
    campaign.timezone = "Mars/Base"
    campaign.save()
    problems = validate_campaign(campaign)
    assert len(problems) == 3
    campaign.steps.all().delete()
    assert "campaign has no steps" in validate_campaign(campaign)
