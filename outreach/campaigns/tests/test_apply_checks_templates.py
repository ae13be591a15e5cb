"""`campaign apply` checks every variant before a campaign can send it, and points at the
file and line of the template at fault."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.campaigns.models import Campaign, Lead, Variant
from outreach.testing import enroll

pytestmark = pytest.mark.django_db

GOOD = '''slug = "checked"
postal_address = "1 Main Street"

[[steps]]
  [[steps.variants]]
  label = "A"
  subject = "Hi {{ first_name | default('there') }}"
  html = """
<p>Hello {{ company }},</p>
<p>{Quick|Short} note.</p>
"""

  [[steps.variants]]
  label = "B"
  subject = "A question"
  text = "Plain {{ company }}"
'''


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.toml"
    path.write_text(text, encoding="utf-8")
    return path


def apply(path: Path) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("campaign", "apply", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(path: Path) -> str:
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"does not validate .* nothing changed"):
        call_command("campaign", "apply", str(path), stdout=io.StringIO(), stderr=err)
    return err.getvalue()


@pytest.fixture
def active(tmp_path: Path) -> Path:
    path = write(tmp_path, GOOD)
    apply(path)
    Campaign.objects.filter(slug="checked").update(state=Campaign.State.ACTIVE)
    return path


BROKEN = {
    "a misspelt variable": (
        "<p>Hello {{ company }},</p>",
        "<p>Hello {{ compnay }},</p>",
        ":9: sample lead: step 1 variant A: 'compnay' is undefined",
    ),
    "a syntax error": (
        "<p>{Quick|Short} note.</p>",
        "<p>{Quick|Short} note {{ x | upper( }}.</p>",
        ":10: step 1 variant A html: template syntax error on line 2",
    ),
    "broken spintax": (
        'text = "Plain {{ company }}"',
        'text = "Plain {yes|no {{ company }}"',
        ":16: step 1 variant B text: ",
    ),
    "a division by zero": (
        'subject = "A question"',
        'subject = "A question {{ 1/0 }}"',
        ":15: sample lead: step 1 variant B: ZeroDivisionError: division by zero",
    ),
}


@pytest.mark.parametrize("good, bad, says", BROKEN.values(), ids=BROKEN.keys())
def test_it_refuses_a_broken_file_on_an_active_campaign_and_changes_nothing(
    active: Path, good: str, bad: str, says: str
) -> None:
    before = sorted(Variant.objects.values_list("label", "subject", "body_html", "body_text"))
    write(active.parent, GOOD.replace(good, bad))
    errors = refused(active)
    assert f"{active}{says}" in errors
    after = sorted(Variant.objects.values_list("label", "subject", "body_html", "body_text"))
    assert after == before


def test_it_takes_a_broken_file_on_a_draft_and_says_what_to_fix(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{{ company }},", "{{ compnay }},"))
    out, err = apply(path)
    assert "campaign checked: created (draft)" in out
    assert f"{path}:9: sample lead: step 1 variant A: 'compnay' is undefined" in err
    assert "1 problem(s) to fix before it can start" in err
    assert "compnay" in Variant.objects.get(label="A").body_html


def test_it_checks_variables_against_the_fields_of_the_enrolled_leads(active: Path) -> None:
    campaign = Campaign.objects.get(slug="checked")
    with_industry = Lead.objects.create(
        email="ann@acme.com", company="Acme", custom={"industry": "Retail"}
    )
    enroll(campaign, [with_industry])
    uses_industry = GOOD.replace("{{ company }},", "{{ company }} in {{ industry }},")
    write(active.parent, uses_industry)
    out, _ = apply(active)  # every enrolled lead has an industry
    assert "step 1 variant A: body_html changed" in out

    without = Lead.objects.create(email="bob@initech.com", company="Initech")
    enroll(campaign, [without])
    write(active.parent, uses_industry.replace("Short", "Brief"))
    errors = refused(active)
    assert f"{active}:9: lead {without.pk} (bob@initech.com): step 1 variant A: " in errors
    assert "'industry' is undefined" in errors
    assert "Short" in Variant.objects.get(label="A").body_html
