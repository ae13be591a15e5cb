"""The template sandbox: a template cannot crash, hang, flood or change what it renders."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.campaigns import sandbox
from outreach.campaigns.models import Campaign, Lead
from outreach.campaigns.templates import RenderError, lead_context, render_step
from outreach.testing import make_campaign


@dataclass
class V:
    subject: str = "Hello"
    body_html: str = ""
    body_text: str = ""


def render_text(source: str, **context: object) -> str:
    email = render_step(
        V(body_text=source),
        context,
        seed="lead:1:step:1",
        unsubscribe_url="https://out.example.com/u/t",
        postal_address="1 Main Street",
    )
    return email.text.split("\n--\n")[0].strip()


HOSTILE = {
    "a division by zero": ("{{ 1/0 }}", "ZeroDivisionError"),
    "a recursive macro": ("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", "recursion"),
    "a huge range": ("{% for i in range(10**9) %}{% endfor %}", "too large"),
    "a long range": ("{% for i in range(100000) %}{% endfor %}", "range() of more than"),
    "a huge repetition": ("{{ 'a' * 300000000 }}", "longer than"),
    "a huge power": ("{{ 10 ** 100000 }}", "too large"),
    "a huge padding": ("{{ 'x'.ljust(10**9) }}", "too large"),
    "a huge filter width": ("{{ 'x' | center(300000000) }}", "too large"),
    "a huge format width": ("{{ '%300000000s' % 'x' }}", "too large"),
    "a doubling loop": (
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
        "longer than",
    ),
    "a huge replacement": ("{{ ('a' * 100000) | replace('a', 'b' * 100000) }}", "longer than"),
    "a huge str.replace": ("{{ ('a' * 100000).replace('a', 'b' * 100000) }}", "longer than"),
    "an output flood": ("{% for i in range(10000) %}{{ 'y' * 1000 }}{% endfor %}", "renders more"),
    "a change to lead data": ("{{ lead.pop('email') }}", "unsafe"),
}


@pytest.mark.parametrize("source, says", HOSTILE.values(), ids=HOSTILE.keys())
def test_it_turns_a_hostile_template_into_one_clear_error(source: str, says: str) -> None:
    lead = {"email": "ann@acme.com", "first_name": "Ann"}
    with pytest.raises(RenderError) as caught:
        render_text(source, lead=lead, **lead)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)
    assert lead == {"email": "ann@acme.com", "first_name": "Ann"}


def test_it_stops_a_render_that_runs_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "RENDER_SECONDS", 0.2)
    loops = "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}done"
    with pytest.raises(RenderError, match=r"took longer than 0\.2 s"):
        render_text(loops)


def test_it_still_renders_ordinary_templates_within_the_limits() -> None:
    source = (
        "{% for i in range(3) %}{{ i }}{% endfor %} {{ first_name | upper }} "
        "{{ '%05d' % 42 }} {{ '{:>6}'.format('ok') }} {{ 'ab' * 3 }} {{ 2 ** 10 }} "
        "{{ 'a-b' | replace('-', '--') }} {{ 'x'.replace('x', 'yz') }}"
    )
    assert render_text(source, first_name="ann") == "012 ANN 00042     ok ababab 1024 a--b yz"


@pytest.mark.django_db
def test_it_refuses_to_start_a_campaign_whose_template_fails_with_a_clear_message() -> None:
    campaign = make_campaign("boom", steps=1, state=Campaign.State.DRAFT)
    campaign.steps.get().variants.update(body_html="<p>{{ 1/0 }}</p>")
    out = io.StringIO()
    with pytest.raises(CommandError, match="does not validate"):
        call_command("campaign", "start", "boom", stdout=out)
    assert "step 1 variant A: ZeroDivisionError: division by zero" in out.getvalue()
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.DRAFT


@pytest.mark.django_db
def test_it_names_the_step_and_variant_when_a_message_cannot_be_rendered() -> None:
    from outreach.campaigns.templates import render_message
    from outreach.testing import enroll, make_leads

    campaign = make_campaign("named", steps=1, state=Campaign.State.ACTIVE)
    campaign.steps.get().variants.update(body_html="<p>{{ 1/0 }}</p>")
    [lead] = make_leads(1)
    enrollment = enroll(campaign, [lead])[0]
    from outreach.campaigns.models import Message

    message = Message.objects.create(
        enrollment=enrollment,
        campaign=campaign,
        step=campaign.steps.get(),
        variant=campaign.steps.get().variants.get(),
        to_email=lead.email,
        to_domain=lead.email.rpartition("@")[2],
    )
    with pytest.raises(RenderError, match=r"^step 1 variant A: ZeroDivisionError"):
        render_message(message)
    assert Lead.objects.get(pk=lead.pk).email == lead.email
    assert lead_context(lead)["email"] == lead.email
