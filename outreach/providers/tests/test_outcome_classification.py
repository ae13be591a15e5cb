"""What each provider answer means: retry, fail, suppress, signal a block, pause the mailbox."""

from __future__ import annotations

import pytest

from outreach.providers.base import Outcome, SendError, classify_http, classify_smtp


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (421, "4.7.0 Try again later, closing connection", Outcome.TRANSIENT),
        (451, "4.3.0 Local error in processing", Outcome.TRANSIENT),
        (452, "4.2.2 Mailbox full", Outcome.TRANSIENT),
        (550, "5.1.1 <a@b.example>: Recipient address rejected: User unknown", Outcome.HARD_BOUNCE),
        (550, "5.1.10 RESOLVER.ADR.RecipientNotFound", Outcome.HARD_BOUNCE),
        (550, "No such user here", Outcome.HARD_BOUNCE),
        (
            554,
            "5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org",
            Outcome.BLOCKED,
        ),
        (550, "5.7.1 Message rejected as spam", Outcome.BLOCKED),
        (554, "Your IP is listed on a blocklist", Outcome.BLOCKED),
        (535, "5.7.8 Username and Password not accepted", Outcome.AUTH_FAILED),
        (530, "5.7.0 Authentication required", Outcome.AUTH_FAILED),
        (552, "5.3.4 Message size exceeds fixed limit", Outcome.PERMANENT),
        # Google Workspace and Microsoft 365 submission answers.
        (550, "5.4.5 Daily user sending limit exceeded.", Outcome.TRANSIENT),
        (432, "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", Outcome.TRANSIENT),
        (
            554,
            "5.2.0 STOREDRV.Submission.Exception:OutboundSpamException; WASCL UserAction "
            "verdict is not None. Actual verdict is Suspend, ShowTierUpgrade.",
            Outcome.BLOCKED,
        ),
        (
            550,
            "5.7.30 Basic authentication is not supported for Client Submission.",
            Outcome.AUTH_FAILED,
        ),
        (535, "5.7.3 Authentication unsuccessful", Outcome.AUTH_FAILED),
        (550, "5.7.26 Unauthenticated email from acme-mail.com is not accepted", Outcome.BLOCKED),
        (554, "Transaction failed", Outcome.PERMANENT),
    ],
)
def test_it_classifies_smtp_replies(code: int, text: str, kind: Outcome) -> None:
    error = classify_smtp(code, text)
    assert error.kind == kind
    assert error.permanent == (kind != Outcome.TRANSIENT)
    assert error.code == str(code)


@pytest.mark.parametrize(
    ("code", "text", "hours"),
    [
        (421, "4.7.0 Try again later, closing connection.", 0.25),
        (550, "5.4.5 Daily user sending limit exceeded.", 24),
        (554, "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException", 24),
        (451, "4.3.0 Local error in processing", 0),
        (554, "5.2.0 STOREDRV.Submission.Exception:OutboundSpamException", 0),
    ],
)
def test_it_rests_the_mailbox_on_a_providers_rate_limit(code: int, text: str, hours: float) -> None:
    assert classify_smtp(code, text).hold_seconds == hours * 3600


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (None, Outcome.TRANSIENT),
        (429, Outcome.TRANSIENT),
        (500, Outcome.TRANSIENT),
        (503, Outcome.TRANSIENT),
        (401, Outcome.AUTH_FAILED),
        (403, Outcome.AUTH_FAILED),
        (400, Outcome.PERMANENT),
        (422, Outcome.PERMANENT),
    ],
)
def test_it_classifies_http_answers(status: int | None, kind: Outcome) -> None:
    assert classify_http(status, "answer").kind == kind


def test_it_says_whether_a_send_error_is_worth_retrying() -> None:
    assert not SendError("busy").permanent
    assert SendError("gone", permanent=True).kind == Outcome.PERMANENT
    assert SendError("who?", kind=Outcome.HARD_BOUNCE).permanent
