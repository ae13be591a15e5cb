"""Reply labels (docs/rules.md, Sequences): a pure decision over what a reply says.

Rules run in a fixed order, the first that matches wins, and each names the words that made
it match (the reason shown beside the label):

1. ``bounce``: a delivery report, or mail from the mail system about a failed delivery;
2. ``unsubscribe_request``: "remove me", "stop emailing", "abmelden", "désinscrire", "dar de
   baja" …: first, because honouring it is the law, even inside a refusal or an auto-reply;
3. ``out_of_office``: absence wording, with the return date when the text gives one;
4. ``wrong_person``: "not the right person", "you should contact …", with the colleague's
   address when one is given;
5. ``auto_reply``: a machine's answer (Auto-Submitted headers, ticket confirmations);
6. ``not_interested``: refusals, checked before interest so that "not interested" and "we
   are not interested at this time" are refusals;
7. ``interested``: asks for a call, a time, a price, more information;
8. ``other``.

Where the rules end at ``other``, a small statistical model trained on the labeled replies
(outreach.events.classify_model) reads the reply: a probability of ``unsubscribe_request``
of 0.3 or more makes it one (unsure between "other" and a request to stop, the law decides),
and any other label of the model is taken at 0.9 or more. A refusal (6) the model reads as a
request to stop (0.5 or more) becomes ``unsubscribe_request``. The model never takes a label
away from the rules otherwise, answers ``bounce`` only (at 0.9 or more) in mail from the mail
system (mailer-daemon, postmaster) whose wording the rules do not know, and its reason names its
probability and the words that weighed most: "model: 0.93 not_interested; words: 'not a
fit', 'pass'".

Word lists (outreach.events.classify_words) cover English, German, French and Spanish; return
dates are read by outreach.events.return_dates. Matching is on the visible reply (the
quoted history would otherwise make every reply say what our own mail said), lower-cased and
with accents kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from outreach.events import classify_model
from outreach.events import classify_words as words
from outreach.events.classify_model import Model
from outreach.events.mailcontent import Content
from outreach.events.return_dates import RETURN_CUE, return_date

INTERESTED = "interested"
NOT_INTERESTED = "not_interested"
OUT_OF_OFFICE = "out_of_office"
AUTO_REPLY = "auto_reply"
UNSUBSCRIBE_REQUEST = "unsubscribe_request"
WRONG_PERSON = "wrong_person"
BOUNCE = "bounce"
OTHER = "other"
LABELS = (
    INTERESTED,
    NOT_INTERESTED,
    OUT_OF_OFFICE,
    AUTO_REPLY,
    UNSUBSCRIBE_REQUEST,
    WRONG_PERSON,
    BOUNCE,
    OTHER,
)


@dataclass(frozen=True)
class Verdict:
    label: str
    reason: str
    return_date: date | None = None
    referred_address: str = ""


# When the rules leave a reply at ``other`` (or read it as a refusal), the model of
# outreach.events.classify_model reads it. Probabilities at or above these choose its label;
# they were set on leave-one-set-out runs that never scored fresh6.txt (docs/events.md).
MODEL_UNSUBSCRIBE = 0.3  # unsure between other and a request to stop: the law decides
MODEL_REFUSAL_UNSUBSCRIBE = 0.5  # a refusal the model reads as a request to stop
MODEL_CONFIDENT = 0.9  # any other label of the model (interested, out_of_office …)
# The model never answers these, except a bounce in mail that the mail system sent
# (mailer-daemon, postmaster): a failed delivery worded in a way the rules do not know.
_NOT_FROM_MODEL = (BOUNCE, OTHER)


def classify(
    *,
    subject: str,
    visible: str,
    text: str = "",
    from_address: str = "",
    auto_submitted: bool = False,
    is_report: bool = False,
    received: date,
    own_addresses: tuple[str, ...] = (),
    model: Model | None = None,
) -> Verdict:
    """The label of one reply and why (pure): the rules, then the model where they leave off.

    The model (``model``, else the one trained on the shipped replies) reads only a reply the
    rules label ``other`` or ``not_interested``, and it can only move a refusal to
    ``unsubscribe_request`` (and ``other`` from the mail system to ``bounce``). So the rules
    keep every unsubscribe, bounce, out-of-office return date and referral address they find.
    """
    verdict = rules(
        subject=subject,
        visible=visible,
        text=text,
        from_address=from_address,
        auto_submitted=auto_submitted,
        is_report=is_report,
        received=received,
        own_addresses=own_addresses,
    )
    if verdict.label not in (OTHER, NOT_INTERESTED):
        return verdict
    body = visible.strip() or text.strip()
    if not classify_model.words(body):
        return verdict
    guess = (model or classify_model.shipped(LABELS)).guess(body)
    unsubscribe = guess.probabilities[UNSUBSCRIBE_REQUEST]
    if verdict.label == NOT_INTERESTED:
        if unsubscribe >= MODEL_REFUSAL_UNSUBSCRIBE:
            why = f"{verdict.reason}; {_model_reason(guess, UNSUBSCRIBE_REQUEST)}"
            return Verdict(UNSUBSCRIBE_REQUEST, why)
        return verdict
    from_mail_system = bool(words.BOUNCE_SENDER.match(from_address))
    if from_mail_system and guess.label == BOUNCE and guess.probability >= MODEL_CONFIDENT:
        return Verdict(BOUNCE, f"from the mail system; {_model_reason(guess, BOUNCE)}")
    if unsubscribe >= MODEL_UNSUBSCRIBE:
        return Verdict(UNSUBSCRIBE_REQUEST, _model_reason(guess, UNSUBSCRIBE_REQUEST))
    if guess.label in _NOT_FROM_MODEL or guess.probability < MODEL_CONFIDENT:
        return Verdict(OTHER, f"no rule matched; {_model_reason(guess, guess.label)}")
    why = _model_reason(guess, guess.label)
    if guess.label == OUT_OF_OFFICE:
        returns = return_date(f"{_subject_core(subject)}\n{body}", received)
        return Verdict(
            OUT_OF_OFFICE, why + (f", back {returns.isoformat()}" if returns else ""), returns
        )
    if guess.label == WRONG_PERSON:
        referral = _referral(body, from_address, own_addresses)
        return Verdict(WRONG_PERSON, why + (f" ({referral})" if referral else ""), None, referral)
    return Verdict(guess.label, why)


def _model_reason(guess: classify_model.Guess, label: str) -> str:
    """ "model: 0.93 not_interested; words: 'not a fit', 'pass'" """
    why = f"model: {guess.probabilities[label]:.2f} {label}"
    if guess.label == label and guess.words:
        why += "; words: " + ", ".join(f"'{w}'" for w in guess.words)
    return why


def rules(
    *,
    subject: str,
    visible: str,
    text: str = "",
    from_address: str = "",
    auto_submitted: bool = False,
    is_report: bool = False,
    received: date,
    own_addresses: tuple[str, ...] = (),
) -> Verdict:
    """The label of one reply by the rules alone, and why (pure)."""
    """The label of one reply by the rules alone, and why (pure)."""
    body = visible.strip() or text.strip()
    reply = _Reply(
        body=body,
        both=f"{_subject_core(subject)}\n{body}",
        from_address=from_address,
        auto_submitted=auto_submitted,
        is_report=is_report,
        received=received,
        own_addresses=own_addresses,
    )
    for rule in _RULES:
        verdict = rule(reply)
        if verdict is not None:
            return verdict
    return Verdict(OTHER, "no rule matched")


@dataclass(frozen=True)
class _Reply:
    """What the rules read of one reply."""

    body: str  # the visible reply, else the whole text
    both: str  # the subject without its "Re:"/"AW:" prefixes, then the body
    from_address: str
    auto_submitted: bool
    is_report: bool
    received: date
    own_addresses: tuple[str, ...]


def _subject_core(subject: str) -> str:
    return re.sub(words.REPLY_PREFIX, "", subject, flags=re.I)


def _bounce(reply: _Reply) -> Verdict | None:
    """1. A delivery report, or the mail system's words about a failed delivery."""
    if reply.is_report:
        return Verdict(BOUNCE, "a delivery status report")
    if words.BOUNCE_SENDER.match(reply.from_address) and (found := words.BOUNCE.search(reply.both)):
        return Verdict(BOUNCE, f"from the mail system: “{found.group(0)}”")
    return None


def _unsubscribe(reply: _Reply) -> Verdict | None:
    """2. A request to stop contact, wherever it stands."""
    found = (
        words.UNSUBSCRIBE.search(reply.both)
        or words.UNSUBSCRIBE_ALONE.search(reply.body)
        or words.REMOVAL.search(reply.body)
    )
    if found:
        return Verdict(UNSUBSCRIBE_REQUEST, f"asks to be removed: “{found.group(0)}”")
    return None


def _absence(reply: _Reply) -> Verdict | None:
    """3. An absence, with its return date; someone who has left is a referral (4)."""
    both, received = reply.both, reply.received
    ooo = words.OOO.search(both)
    if not ooo and reply.auto_submitted and return_date(both, received):
        ooo = RETURN_CUE.search(both)  # a machine's notice naming the day someone is back
    if not ooo:
        return None
    returns = return_date(both, received)
    why = f"absence: “{ooo.group(0)}”"
    if returns:
        why += f", back {returns.isoformat()}"
    if departed := words.DEPARTED.search(reply.body):
        referral = _referral(reply.body, reply.from_address, reply.own_addresses)
        why = f"has left: “{departed.group(0)}”" + (f" ({referral})" if referral else "")
        return Verdict(WRONG_PERSON, why, None, referral)
    return Verdict(OUT_OF_OFFICE, why, returns)


def _points_elsewhere(reply: _Reply) -> Verdict | None:
    """4. "Not the right person", with the colleague's address when one is given."""
    found = words.WRONG_PERSON.search(reply.body)
    if not found:
        return None
    referral = _referral(reply.body, reply.from_address, reply.own_addresses)
    why = f"points elsewhere: “{found.group(0)}”"
    return Verdict(WRONG_PERSON, why + (f" ({referral})" if referral else ""), None, referral)


def _machine(reply: _Reply) -> Verdict | None:
    """5. A machine's answer, by its headers or its wording."""
    if reply.auto_submitted:
        return Verdict(AUTO_REPLY, "Auto-Submitted/Precedence header of a machine's answer")
    if found := words.AUTO.search(reply.both):
        return Verdict(AUTO_REPLY, f"a machine's answer: “{found.group(0)}”")
    return None


def _refusal(reply: _Reply) -> Verdict | None:
    """6. A refusal, unless it also asks to stop contact."""
    found = words.NOT_INTERESTED.search(reply.body)
    if not found:
        return None
    if hint := words.STOP_HINT.search(reply.body):
        # A refusal that also says "stop", "remove", "no … más": unsure between a refusal
        # and a request to stop contact, the law decides for the unsubscribe.
        why = f"refuses (“{found.group(0)}”) and asks to stop: “{hint.group(0)}”"
        return Verdict(UNSUBSCRIBE_REQUEST, why)
    return Verdict(NOT_INTERESTED, f"refuses: “{found.group(0)}”")


def _interest(reply: _Reply) -> Verdict | None:
    """7. Asks for a call, a time, a price, more information."""
    if found := words.INTERESTED.search(reply.body):
        return Verdict(INTERESTED, f"shows interest: “{found.group(0)}”")
    return None


def _colleague(reply: _Reply) -> Verdict | None:
    """Nothing else said, and a colleague's address given: a referral."""
    colleague = _referral(reply.body, reply.from_address, reply.own_addresses)
    if colleague and colleague.rpartition("@")[2] == reply.from_address.rpartition("@")[2]:
        return Verdict(WRONG_PERSON, f"names a colleague: {colleague}", None, colleague)
    return None


def _stop_words(reply: _Reply) -> Verdict | None:
    """Nothing else matched but the words of a request to stop are there: honouring an
    unsubscribe is the law, so an unsure reading errs on that side."""
    if found := words.STOP_HINT.search(reply.body):
        return Verdict(UNSUBSCRIBE_REQUEST, f"words of a request to stop: “{found.group(0)}”")
    return None


# The rules in their order (the module's docstring); the first that answers wins.
_RULES: tuple[Callable[[_Reply], Verdict | None], ...] = (
    _bounce,
    _unsubscribe,
    _absence,
    _points_elsewhere,
    _machine,
    _refusal,
    _interest,
    _colleague,
    _stop_words,
)


def classify_content(
    content: Content,
    *,
    received: date,
    own_addresses: tuple[str, ...] = (),
    model: Model | None = None,
) -> Verdict:
    return classify(
        subject=content.subject,
        visible=content.visible,
        text=content.text,
        from_address=content.from_address,
        auto_submitted=content.auto_submitted,
        is_report=content.is_report,
        received=received,
        own_addresses=own_addresses,
        model=model,
    )


def _referral(body: str, sender: str, own: tuple[str, ...]) -> str:
    skip = {sender.lower(), *(a.lower() for a in own)}
    for found in words.ADDRESS.finditer(body):
        address = found.group(0).strip(".").lower()
        if address not in skip:
            return address
    return ""
