"""Signed link tokens: Django's signed format under the link key, one salt per purpose."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import signing

from outreach.lib import tokens

PURPOSE = "outreach.test"


def test_it_makes_the_token_django_signing_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("django.core.signing.time.time", lambda: 1_800_000_000.5)
    for value in (7, 12_345_678, [42, 0, "https://example.com/é?a=1&b=2", 1], "x"):
        expected = signing.dumps(value, key=_key(), salt=PURPOSE, compress=False)
        assert tokens.sign(value, PURPOSE) == expected


def test_it_reads_back_what_it_signed() -> None:
    assert tokens.unsign(tokens.sign([1, "two"], PURPOSE), PURPOSE) == [1, "two"]
    assert tokens.unsign(tokens.sign(1, PURPOSE), "outreach.other-purpose") is None


def test_it_signs_with_the_key_in_force_when_the_key_changes(settings: Any) -> None:
    before = tokens.sign(5, PURPOSE)  # the signer of the old key is kept by now
    old_key = settings.OUTREACH_UNSUBSCRIBE_KEY
    settings.OUTREACH_UNSUBSCRIBE_KEY = "a-rotated-link-key-" + "k" * 40
    after = tokens.sign(5, PURPOSE)

    assert signing.loads(after, key=settings.OUTREACH_UNSUBSCRIBE_KEY, salt=PURPOSE) == 5
    with pytest.raises(signing.BadSignature):
        signing.loads(after, key=old_key, salt=PURPOSE)
    assert signing.loads(before, key=old_key, salt=PURPOSE) == 5


def _key() -> str:
    from django.conf import settings

    return str(settings.OUTREACH_UNSUBSCRIBE_KEY)
