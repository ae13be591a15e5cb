"""Campaigns as TOML files, and the `outreach campaign` command end to end."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.campaigns import config
from outreach.campaigns.models import Campaign, Enrollment, Message, Step, Variant
from outreach.pool.models import Mailbox

from .conftest import EXAMPLES

pytestmark = pytest.mark.django_db

MINIMAL = """
slug = "mini"
postal_address = "1 Main Street"

[[steps]]
subject = "Hi {{ first_name }}"
html = "<p>Hello</p>"
"""


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_it_applies_the_example_campaign_and_reports_no_changes_the_second_time() -> None:
    first = run("campaign", "apply", str(EXAMPLES / "campaign.toml"))
    assert "created (draft)" in first
    campaign = Campaign.objects.get(slug="example-intro")
    assert campaign.state == Campaign.State.DRAFT
    assert campaign.window_days == [1, 2, 3, 4, 5]
    assert (str(campaign.window_start), str(campaign.window_end)) == ("09:00:00", "17:00:00")
    assert not campaign.allowed_domains.exists() and not campaign.allowed_mailboxes.exists()
    assert list(campaign.steps.values_list("position", "delay_days")) == [(1, 0), (2, 3), (3, 4)]
    assert sorted(Variant.objects.filter(step__position=1).values_list("label", "weight")) == [
        ("A", 50),
        ("B", 50),
    ]
    assert run("campaign", "apply", str(EXAMPLES / "campaign.toml")).strip() == (
        "campaign example-intro: no changes"
    )


def test_it_updates_in_place_and_removes_what_the_file_dropped() -> None:
    config.apply(config.parse(MINIMAL + '\n[[steps]]\ndelay_days = 2\ntext = "again"\n'))
    assert Step.objects.count() == 2
    changes = config.apply(config.parse(MINIMAL.replace("Hello", "Bonjour")))
    assert changes == ["step 1 variant A: body_html changed", "step 2: removed"]
    assert Variant.objects.get().body_html == "<p>Bonjour</p>"


def test_it_keeps_a_step_that_has_messages(pool: list[Mailbox]) -> None:
    config.apply(config.parse(MINIMAL + '\n[[steps]]\ndelay_days = 2\ntext = "again"\n'))
    step2 = Step.objects.get(position=2)
    Message.objects.create(step=step2, variant=step2.variants.get(), to_email="a@b.co")
    with pytest.raises(config.ConfigError, match="step 2 already has messages"):
        config.apply(config.parse(MINIMAL))
    assert Step.objects.count() == 2


def test_it_restricts_senders_to_named_domains_and_mailboxes(pool: list[Mailbox]) -> None:
    text = MINIMAL + (
        f'[senders]\ndomains = ["{pool[0].domain.name}"]\nmailboxes = ["{pool[-1].address}"]\n'
    )
    config.apply(config.parse(text))
    campaign = Campaign.objects.get()
    assert list(campaign.allowed_domains.all()) == [pool[0].domain]
    assert list(campaign.allowed_mailboxes.all()) == [pool[-1]]
    with pytest.raises(config.ConfigError, match=r"unknown domain nowhere\.example"):
        config.apply(config.parse(MINIMAL + '[senders]\ndomains = ["nowhere.example"]\n'))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slug = 'x'\n", "postal_address: required"),
        ("colour = 'red'\n" + MINIMAL, "^colour: unknown key"),
        (MINIMAL.replace("1 Main Street", " "), "postal_address: required"),
        (MINIMAL + "[window]\ndays = ['someday']\n", "window.days"),
        (MINIMAL + "[window]\nstart = '18:00'\nend = '09:00'\n", "start must be before end"),
        ("timezone = 'Mars/Base'\n" + MINIMAL, "unknown time zone"),
        (MINIMAL + "[stop]\non_reply = false\n", "stop.on_reply"),
        (MINIMAL.replace('subject = "Hi {{ first_name }}"', ""), "first step needs a subject"),
        (MINIMAL + "\n[[steps]]\ntext = 'x'\n", "follow-up needs a delay"),
        ("slug = 'Bad Slug'\n", "slug"),
        ("slug = [", "not valid TOML"),
    ],
)
def test_it_refuses_a_bad_file_with_the_key_named(text: str, message: str) -> None:
    with pytest.raises(config.ConfigError, match=message):
        config.parse(text)


BAD_NUMBERS = {
    "an integer beyond 64 bits": (
        "daily_cap = 100000000000000000000\n" + MINIMAL,
        "daily_cap: 100000000000000000000 does not fit in 64 bits (TOML integers are 64-bit) "
        "(line 1)",
    ),
    "a cap beyond the database's integers": (
        "daily_cap = 9223372036854775807\n" + MINIMAL,
        "daily_cap: expected a whole number from 1 to 2147483647, got 9223372036854775807 (line 1)",
    ),
    "a boolean cap": (
        "daily_cap = true\n" + MINIMAL,
        "daily_cap: expected a whole number, got True (line 1)",
    ),
    "a boolean weight": (
        MINIMAL.replace("[[steps]]\n", "[[steps]]\n[[steps.variants]]\nweight = true\n")
        .replace("subject =", "  subject =")
        .replace("html =", "  html ="),
        "steps[1].variants[1].weight: expected a whole number, got True (line 7)",
    ),
    "a boolean delay": (
        MINIMAL + "\n[[steps]]\ndelay_days = false\ntext = 'x'\n",
        "steps[2].delay_days: expected a whole number, got False (line 10)",
    ),
    "a delay past a year": (
        MINIMAL + "\n[[steps]]\ndelay_days = 100000\ntext = 'x'\n",
        "steps[2].delay_days: expected a whole number from 0 to 365, got 100000 (line 10)",
    ),
}


@pytest.mark.parametrize(("text", "message"), BAD_NUMBERS.values(), ids=BAD_NUMBERS.keys())
def test_it_refuses_a_bad_number_with_its_key_and_line(text: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(text)
    assert str(caught.value) == message


def test_the_command_validates_previews_and_drives_the_lifecycle(pool: list[Mailbox]) -> None:
    run("campaign", "apply", str(EXAMPLES / "campaign.toml"))
    run("leads", "import", str(EXAMPLES / "leads.csv"), "--campaign", "example-intro")
    assert "OK" in run("campaign", "validate", "example-intro")
    enrollment = Enrollment.objects.order_by("pk").first()
    assert enrollment is not None
    email = enrollment.lead.email
    preview = run("campaign", "preview", "example-intro", "--lead", email.upper())
    assert "To: " in preview and email in preview
    assert "List-Unsubscribe: <http" in preview
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in preview
    assert "--- text/plain" in preview and "--- text/html" in preview
    assert "221 Harbour Street" in preview.split("--- text/html")[0]
    assert "221 Harbour Street" in preview.split("--- text/html")[1]
    follow_up = run("campaign", "preview", "example-intro", "--lead", email, "--step", "2")
    assert "Subject: Re: " in follow_up
    assert Message.objects.count() == 0  # previews save nothing
    assert "active" in run("campaign", "start", "example-intro")
    assert "paused" in run("campaign", "pause", "example-intro")
    assert "active" in run("campaign", "resume", "example-intro")
    assert "stopped" in run("campaign", "stop", "example-intro")
    assert not Enrollment.objects.filter(state=Enrollment.State.ACTIVE).exists()


def test_the_command_refuses_to_start_a_campaign_that_does_not_validate() -> None:
    config.apply(config.parse(MINIMAL))
    campaign = Campaign.objects.get()
    run(
        "leads",
        "import",
        str(Path(__file__).parent / "data" / "leads_dirty.csv"),
        "--campaign",
        "mini",
    )
    out = io.StringIO()
    with pytest.raises(CommandError, match="does not validate"):
        call_command("campaign", "start", "mini", stdout=out)
    assert "'first_name' is undefined" in out.getvalue()
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.DRAFT
    lead = campaign.enrollments.get(lead__email__startswith="eve.").lead
    with pytest.raises(CommandError, match="no step 5"):
        run("campaign", "preview", "mini", "--lead", lead.email, "--step", "5")
    with pytest.raises(CommandError, match="no campaign"):
        run("campaign", "start", "nope")


def test_make_run_loads_the_examples_on_a_fresh_database() -> None:
    """What `make run` does after migrating: pool, campaign, leads, start."""
    run("apply", str(EXAMPLES / "pool.toml"))
    run("campaign", "apply", str(EXAMPLES / "campaign.toml"))
    run("leads", "import", str(EXAMPLES / "leads.csv"), "--campaign", "example-intro")
    run("campaign", "start", "example-intro")
    campaign = Campaign.objects.get(slug="example-intro")
    assert campaign.state == Campaign.State.ACTIVE
    assert campaign.enrollments.filter(state=Enrollment.State.ACTIVE).count() > 200


def make_run_commands() -> list[list[str]]:
    """The `outreach` commands of the Makefile's run target, but migrate and the server."""
    recipe = (EXAMPLES.parent / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n")[0]
    commands = [
        shlex.split(line.strip().removeprefix("$(BIN)/outreach"))
        for line in recipe.splitlines()
        if line.strip().startswith("$(BIN)/outreach")
    ]
    return [c for c in commands if c[0] not in ("migrate", "run")]


@pytest.mark.parametrize("state", [Campaign.State.ACTIVE, Campaign.State.PAUSED])
def test_make_run_runs_again_whatever_state_the_example_is_in(state: str) -> None:
    commands = make_run_commands()
    assert ["campaign", "apply", "examples/campaign.toml"] in commands
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(EXAMPLES.parent)
        for command in commands:
            run(*command)
        Campaign.objects.filter(slug="example-intro").update(state=state)
        for command in commands:  # `make run` again: nothing fails, nothing is restarted
            run(*command)
    assert Campaign.objects.get(slug="example-intro").state == state
