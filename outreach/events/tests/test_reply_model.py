"""The reply model beside the rules: what it may decide, what it may never take away, its
reasons, its determinism, and the training data that ships with the package."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command

from outreach.events import classify_model
from outreach.events.classify import LABELS, classify
from outreach.events.classify_train import render

WEDNESDAY = date(2026, 12, 2)


def model_of(*examples: tuple[str, str]) -> classify_model.Model:
    return classify_model.train(list(examples), LABELS)


def verdict(text: str, model: classify_model.Model | None = None, **kwargs: object):
    return classify(
        subject="Re: Quick question",
        visible=text,
        received=WEDNESDAY,
        model=model,
        **kwargs,  # type: ignore[arg-type]
    )


# A model that reads "walrus" as a refusal and "pelican" as interest: words no rule knows.
ANIMALS = model_of(
    ("the walrus sleeps", "not_interested"),
    ("walrus walrus again", "not_interested"),
    ("a walrus on the beach", "not_interested"),
    ("the pelican flies", "interested"),
    ("pelican over the sea", "interested"),
    ("our pelican again", "interested"),
    ("the weather today", "other"),
)


def test_it_labels_what_the_rules_leave_at_other_with_the_models_reason() -> None:
    assert verdict("Walrus.").label == "other"  # the shipped model has never seen a walrus

    found = verdict("Walrus, walrus.", ANIMALS)

    assert found.label == "not_interested"
    assert found.reason.startswith("model: 0.9")
    assert found.reason.endswith("not_interested; words: 'walrus'")


def test_it_keeps_other_when_the_model_is_unsure() -> None:
    found = verdict("walrus pelican", ANIMALS)

    assert found.label == "other"
    assert found.reason.startswith("no rule matched; model: ")


@pytest.mark.parametrize(
    "text",
    [
        "Please remove me from your list.",  # unsubscribe
        "I am out of the office until Monday, December 7.",  # absence with its return date
        "Not the right person - talk to anna@corp.example.",  # referral with the address
        "We are very interested, call me Thursday.",
    ],
)
def test_it_never_overrides_what_the_rules_decide(text: str) -> None:
    # A model that calls everything a refusal changes nothing the rules decided.
    contrary = model_of((text, "not_interested"), ("something else", "other"))

    assert verdict(text, contrary) == verdict(text, None) == verdict(text, ANIMALS)


def test_it_reads_a_bounce_only_in_mail_the_mail_system_sent() -> None:
    # A gateway's wording no rule knows ("zorblat"), read as a failed delivery by the model.
    gateway = model_of(
        ("the zorblat was not handed over", "bounce"),
        ("zorblat handed back to the sender", "bounce"),
        ("zorblat refused at the door", "bounce"),
        ("the weather today", "other"),
    )
    text = "Zorblat not handed over, sorry."

    from_gateway = verdict(text, gateway, from_address="postmaster@gw.corp.example")
    from_person = verdict(text, gateway, from_address="anna@corp.example")

    assert from_gateway.label == "bounce"
    assert from_gateway.reason.startswith("from the mail system; model: ")
    assert from_person.label == "other"


def test_it_never_turns_an_unsubscribe_into_anything_else() -> None:
    refusing = model_of(("stop", "not_interested"), ("stop stop", "interested"))

    found = verdict("STOP", refusing)

    assert found.label == "unsubscribe_request"
    assert "model" not in found.reason


def test_unsure_between_other_and_unsubscribe_it_unsubscribes() -> None:
    # The law decides: a third of the model's belief on "stop contact" is enough.
    leaning = model_of(
        ("marmot ferret", "unsubscribe_request"),
        ("badger", "unsubscribe_request"),
        ("marmot ferret", "other"),
        ("marmot ferret", "other"),
        ("weasel", "other"),
    )
    guess = leaning.guess("marmot ferret")
    assert 0.3 <= guess.probabilities["unsubscribe_request"] < guess.probability

    found = verdict("marmot ferret", leaning)

    assert found.label == "unsubscribe_request"
    assert found.reason.startswith("model: 0.")


def test_a_refusal_the_model_reads_as_a_request_to_stop_is_an_unsubscribe() -> None:
    stopping = model_of(
        ("not interested, walrus walrus", "unsubscribe_request"),
        ("walrus walrus", "unsubscribe_request"),
        ("a walrus", "unsubscribe_request"),
        ("not interested", "not_interested"),
    )
    assert verdict("Not interested.", stopping).label == "not_interested"

    found = verdict("Not interested. Walrus walrus.", stopping)

    assert found.label == "unsubscribe_request"
    assert found.reason.startswith("refuses: “Not interested”; model: 0.9")


def test_an_absence_read_by_the_model_keeps_its_return_date() -> None:
    away = model_of(
        ("the walrus is asleep until friday", "out_of_office"),
        ("walrus asleep, back monday", "out_of_office"),
        ("walrus asleep", "out_of_office"),
        ("the weather", "other"),
    )

    found = verdict("Walrus asleep. Back on 9 December.", away)

    assert (found.label, found.return_date) == ("out_of_office", date(2026, 12, 9))
    assert found.reason.endswith(", back 2026-12-09")


def test_it_folds_accents_and_case() -> None:
    assert classify_model.features("DÉSINSCRIVEZ-moi, Straße") == classify_model.features(
        "desinscrivez-MOI, strasse"
    )


def test_training_is_deterministic() -> None:
    examples = classify_model.read_examples()
    first = classify_model.train(examples, LABELS).guess("Danke, wir sind gut aufgestellt.")
    again = classify_model.train(list(examples), LABELS).guess("Danke, wir sind gut aufgestellt.")
    assert first == again


def test_the_shipped_training_data_is_the_labeled_corpus() -> None:
    # If this fails: python -m outreach.events.classify_train
    shipped = classify_model.TRAINING_DATA.read_text(encoding="utf-8")
    assert shipped == render()
    assert len(classify_model.read_examples()) >= 800


def test_the_command_shows_the_models_label_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mail = tmp_path / "reply.eml"
    mail.write_bytes(
        b"From: a@corp.example\r\nSubject: Re: Quick question\r\n"
        b"Date: Wed, 02 Dec 2026 09:00:00 +0000\r\n\r\n"
        b"We looked at a few of these and went another way.\r\n"
    )

    call_command("inbox", "classify", str(mail), "--json")

    row = json.loads(capsys.readouterr().out)
    assert row["label"] == "not_interested"
    assert row["reason"].startswith("model: ")
