"""Reply labels: the rules in four languages, return dates, the goals on the labeled corpus,
and `outreach inbox classify`, which never touches the database."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.events.classify import classify, rules
from outreach.events.mailcontent import read_content
from outreach.events.return_dates import return_date
from outreach.events.tests import replies
from outreach.events.tests.replies import evaluation

WEDNESDAY = date(2026, 12, 2)


def label_of(text: str, subject: str = "Re: Quick question", **kwargs: object) -> str:
    return classify(subject=subject, visible=text, received=WEDNESDAY, **kwargs).label  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Sounds good, can we talk Thursday?", "interested"),
        ("Klingt gut, rufen Sie mich morgen an.", "interested"),
        ("Oui, ça m'intéresse. Un appel jeudi ?", "interested"),
        ("Sí, me interesa. ¿Hablamos el jueves?", "interested"),
        ("Thanks, but we are not interested at this time.", "not_interested"),
        ("I wouldn't be interested in this, sorry.", "not_interested"),
        ("Danke, kein Interesse.", "not_interested"),
        ("Merci, mais ça ne nous intéresse pas.", "not_interested"),
        ("Gracias, pero no nos interesa.", "not_interested"),
        ("Not interested. Please remove me from your list.", "unsubscribe_request"),
        ("Bitte tragen Sie mich aus Ihrem Verteiler aus.", "unsubscribe_request"),
        ("Merci de me désinscrire.", "unsubscribe_request"),
        ("Por favor, denme de baja.", "unsubscribe_request"),
        ("STOP", "unsubscribe_request"),
        ("Not the right person - talk to anna@corp.example.", "wrong_person"),
    ],
)
def test_it_labels_replies_in_four_languages(text: str, label: str) -> None:
    assert label_of(text) == label


def test_the_rules_leave_a_question_about_the_address_at_other() -> None:
    # No rule reads it as a request to stop. The model trained on the shipped replies leans
    # to the unsubscribe here (the corpus has "who gave you this address? … delete it"), as
    # it is meant to when unsure: that is the model's choice, not the rules'.
    verdict = rules(
        subject="Re: Quick question", visible="Who gave you my address?", received=WEDNESDAY
    )
    assert verdict.label == "other"


@pytest.mark.parametrize(
    "text",
    [
        "Please quit messaging me.",
        "Could you stop reaching out to me?",
        "Kindly refrain from calling or emailing me.",
        "Don't ever email this address again.",
        "I do not wish to receive any more emails from you.",
        "Not interested, stop.",
        "unsubscibe",
        "I invoke my right to erasure.",
        "Hören Sie auf, uns zu mailen.",
        "Bitte nie wieder anschreiben.",
        "Ne me relancez plus.",
        "Je ne veux plus être contacté.",
        "Bórrenme de sus envíos.",
        "Deja de escribirme.",
        "Never call this number or email this address.",
        "Lasst uns in Ruhe.",
        "Merci de cesser de nous solliciter.",
        "No queremos que nos escriban más.",
        "Thanks. Please, unsubscribe.",
        "Please scrub my details.",
        "Bitte die Kontaktaufnahme einstellen.",
        "I'll report this as spam.",
        "Ich verlange die Löschung meiner Adresse.",
        "Nous préférons ne plus recevoir ceci.",
        "Basta ya.",
        "We're not interested - enough.",
    ],
)
def test_it_takes_any_request_to_stop_contact_as_an_unsubscribe(text: str) -> None:
    # Shapes (a stop or a negation, a way of contacting, "again"), not a list of sentences.
    assert label_of(text) == "unsubscribe_request"


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Interested? Nope.", "not_interested"),
        ("We don't have the budget for it.", "not_interested"),
        ("Das ist für uns nicht interessant.", "not_interested"),
        ("What's the price for two seats?", "interested"),
        ("Might be a fit. How does it compare to Lemlist?", "interested"),
        ("I can't say we're interested.", "not_interested"),
        ("We went with another vendor.", "not_interested"),
        ("We do it in-house.", "not_interested"),
        ("Das kommt nicht in Frage.", "not_interested"),
        ("Happy to take a 10-minute call.", "interested"),
        ("That doesn't really fit our business.", "not_interested"),
        ("Wir haben dafür keine Kapazitäten.", "not_interested"),
        ("Can you stop by on Tuesday?", "interested"),
        ("Looks relevant - open to a call.", "interested"),
    ],
)
def test_it_reads_interest_and_its_negation(text: str, label: str) -> None:
    assert label_of(text) == label


@pytest.mark.parametrize(
    ("text", "label"),
    [
        # Kept out of whatever sends the mail: a request to stop.
        ("Please leave us off any future mailings.", "unsubscribe_request"),
        ("Drop us from the campaign, thanks.", "unsubscribe_request"),
        # "I'm in" is agreement only on its own.
        ("I'm in!", "interested"),
        ("I'm in finance.", "other"),
        ("I'm in operations; our IT people handle that, not me.", "wrong_person"),
        # No budget is a refusal in every language, not a question about the price.
        ("No hay presupuesto este año.", "not_interested"),
        ("Nous n'avons pas le budget cette année.", "not_interested"),
        # A ticket desk's or a shared inbox's answer.
        (
            "Your enquiry was received. A member of our team will respond within two days.",
            "auto_reply",
        ),
        ("This address is checked twice a week.", "auto_reply"),
        # "Do not send <a thing> by email" is an instruction, not a request to stop.
        ("Please do not send passwords or card data by email.", "other"),
        ("Please do not send me anything else.", "unsubscribe_request"),
        # Any leave, any way of saying mail is not read.
        ("I'm on bereavement leave.", "out_of_office"),
        ("I won't be checking email until the 14th.", "out_of_office"),
        # Retired, or "you would have to talk to …": someone else.
        ("He retired last spring.", "wrong_person"),
        ("Tendría que escribir a contabilidad.", "wrong_person"),
        ("Da müssten Sie sich an den Einkauf wenden.", "wrong_person"),
        ("Il faudrait contacter notre DSI.", "wrong_person"),
    ],
)
def test_it_reads_general_shapes_not_sentences(text: str, label: str) -> None:
    assert rules(subject="Re: Quick question", visible=text, received=WEDNESDAY).label == label


@pytest.mark.parametrize(
    "text",
    [
        "Your message to anna@corp.example could not be delivered: mailbox unavailable.",
        "Sorry, no mailbox here by that name.",
        "Remote server said: 550 5.1.1 <anna@corp.example> recipient rejected",
        "Ihre Nachricht konnte nicht zugestellt werden.",
        "Le message n'a pas pu être distribué : adresse introuvable.",
        "Su mensaje no ha podido ser entregado.",
    ],
)
def test_it_reads_a_failed_delivery_only_from_the_mail_system(text: str) -> None:
    def by(sender: str) -> str:
        return rules(subject="failure", visible=text, from_address=sender, received=WEDNESDAY).label

    assert by("MAILER-DAEMON@mx.corp.example") == "bounce"
    assert by("postmaster@gw.corp.example") == "bounce"
    assert by("anna@corp.example") != "bounce"  # a person telling us about it


def test_it_leaves_the_header_of_a_quoted_mail_out_of_the_visible_reply() -> None:
    raw = (
        "From: marta@beltran.example\r\nSubject: RV: Logística\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Paco, ¿sabes quién es?\r\n\r\n-----Mensaje original-----\r\n"
        "De: Tom Rep <tom@send1.example.com>\r\nEnviado el: martes, 1 de diciembre de 2026\r\n"
    ).encode()
    content = read_content(raw)
    assert content.visible == "Paco, ¿sabes quién es?"
    assert content.quoted.startswith("-----Mensaje original-----\nDe: Tom Rep")


def test_it_gives_each_label_with_its_reason_and_the_referred_address() -> None:
    verdict = classify(
        subject="Re: hi",
        visible="I'm not the right person. Please contact lisa.park@corp.example instead.",
        from_address="brian@corp.example",
        received=WEDNESDAY,
    )
    assert verdict.label == "wrong_person"
    assert "not the right person" in verdict.reason
    assert verdict.referred_address == "lisa.park@corp.example"


def test_it_reads_the_return_date_of_an_absence() -> None:
    verdict = classify(
        subject="Automatic reply: Quick question",
        visible="I am out of the office until Monday, December 7, with limited access to email.",
        auto_submitted=True,
        received=WEDNESDAY,
    )
    assert (verdict.label, verdict.return_date) == ("out_of_office", date(2026, 12, 7))


@pytest.mark.parametrize(
    ("text", "returns"),
    [
        ("I am out of the office until 12/14/2026.", date(2026, 12, 14)),
        ("Ich bin bis zum 11.12.2026 nicht im Büro.", date(2026, 12, 11)),
        ("Je suis absente jusqu'au 10 décembre inclus.", date(2026, 12, 10)),
        ("Estoy fuera de la oficina hasta el 9 de diciembre.", date(2026, 12, 9)),
        ("Out from December 1 through December 9, 2026.", date(2026, 12, 9)),
        ("On leave until January 4th, 2027.", date(2027, 1, 4)),
        ("Back in the office on Monday.", date(2026, 12, 7)),
        ("I'm away this week.", None),
        ("Closed through January 3; we reopen on January 4.", date(2027, 1, 4)),
        ("Away until the 9th, back on the 10th.", date(2026, 12, 10)),
        ("Estoy fuera hasta el 10/12. Vuelvo el viernes 11.", date(2026, 12, 11)),
        ("Bis Freitag unterwegs, ab Montag wieder da.", date(2026, 12, 7)),
        ("Off sick, back tomorrow.", date(2026, 12, 3)),
        ("I return on 7 December; the shop stays closed until 24 December.", date(2026, 12, 7)),
        ("Back Friday 10am.", date(2026, 12, 4)),
        ("En déplacement jusqu'au 8 décembre. De retour le 9.", date(2026, 12, 9)),
        ("Zurück am 4. Januar.", date(2027, 1, 4)),
    ],
)
def test_it_reads_return_dates_in_several_formats(text: str, returns: date | None) -> None:
    assert return_date(text, WEDNESDAY) == returns


def test_it_labels_by_the_visible_reply_not_the_quoted_history() -> None:
    raw = (
        b"From: olivia@bennett.example\r\nSubject: Re: Quick question\r\n\r\n"
        b"Hi Tom,\r\n\r\nThanks, but I don't think this is for us.\r\n\r\nOlivia\r\n\r\n"
        b"On Tue, Dec 1, 2026 at 10:00 AM Tom Rep <tom@send1.example.com> wrote:\r\n"
        b"> Would you be interested in a quick call?\r\n"
    )
    content = read_content(raw)
    assert "interested" not in content.visible
    assert classify(subject=content.subject, visible=content.visible, received=WEDNESDAY).label == (
        "not_interested"
    )


def test_it_meets_the_goals_on_sets_the_model_was_not_trained_on() -> None:
    # Each corpus file is labeled by the rules and a model trained on the other training files:
    # the goals hold pooled over all of them, and accuracy and unsubscribe recall hold for each
    # file the rules were tuned on. The files of replies.HELD_OUT are wording neither the rules
    # nor the model saw: the goals hold pooled over them, as one reading of unseen wording.
    paths = sorted(replies.CORPUS.parent.glob("*.txt"))
    readings = evaluation.leave_one_set_out(paths)
    every = [r for rs in readings.values() for r in rs]
    assert len(every) >= 200
    assert {r.sample.language for r in every} >= {"en", "de", "fr", "es"}
    assert set(replies.HELD_OUT) <= set(readings)

    pooled = evaluation.figures([r.sample.label for r in every], [r.combined.label for r in every])
    assert pooled["unsubscribe_request_recall"] >= 0.98
    assert pooled["out_of_office_precision"] >= 0.95
    assert pooled["interested_precision"] >= 0.95
    assert pooled["accuracy"] >= 0.90
    unseen = [r for name in replies.HELD_OUT for r in readings[name]]
    assert len(unseen) >= 200
    fresh = evaluation.figures([r.sample.label for r in unseen], [r.combined.label for r in unseen])
    assert fresh["unsubscribe_request_recall"] >= 0.98
    assert fresh["out_of_office_precision"] >= 0.95
    assert fresh["interested_precision"] >= 0.95
    assert fresh["accuracy"] >= 0.90
    for name, rs in readings.items():
        if name in replies.HELD_OUT:
            continue
        alone = evaluation.figures([r.sample.label for r in rs], [r.combined.label for r in rs])
        assert alone["accuracy"] >= 0.90, name
        assert alone["unsubscribe_request_recall"] >= 0.98, name
    for reading in every:
        # The model never takes away a rule's unsubscribe, bounce, absence or referral.
        if reading.rules.label not in ("other", "not_interested"):
            assert reading.combined == reading.rules


def test_the_command_prints_one_json_object_per_file_without_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ooo = tmp_path / "ooo.eml"
    ooo.write_bytes(
        b"From: a@corp.example\r\nSubject: Automatic reply\r\nAuto-Submitted: auto-replied\r\n"
        b"Date: Wed, 02 Dec 2026 09:00:00 +0000\r\n\r\n"
        b"Ich bin bis zum 11.12.2026 nicht im B\xc3\xbcro.\r\n"
    )
    html = tmp_path / "html.eml"
    html.write_bytes(
        b"From: b@corp.example\r\nSubject: Re: hi\r\nContent-Type: text/html\r\n\r\n"
        b"<p>Please <b>unsubscribe</b> me.</p><script>x()</script>\r\n"
    )

    call_command("inbox", "classify", str(ooo), str(html), "--json")

    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == {
        "file": str(ooo),
        "label": "out_of_office",
        "reason": rows[0]["reason"],
        "return_date": "2026-12-11",
    }
    assert rows[0]["reason"].startswith("absence")
    assert (rows[1]["label"], rows[1]["return_date"]) == ("unsubscribe_request", None)


def test_the_command_reports_a_missing_file_and_labels_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(b"From: a@corp.example\r\nSubject: Re: hi\r\n\r\nNot interested.\r\n")

    with pytest.raises(CommandError, match="1 file"):
        call_command("inbox", "classify", str(tmp_path / "missing.eml"), str(good))

    out = capsys.readouterr()
    assert "missing.eml: cannot read" in out.err
    assert f"{good}: not_interested" in out.out
