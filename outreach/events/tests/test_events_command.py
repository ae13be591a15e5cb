"""`outreach events list`: one row per dead letter, whatever its error says."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from outreach.events.models import DeadLetter

pytestmark = pytest.mark.django_db


def test_it_lists_each_dead_letter_on_one_row_even_with_newlines_in_its_error() -> None:
    DeadLetter.objects.create(
        endpoint="/webhooks/postmark/",
        error="bad payload:\nline two\r\n\tline three",
        status_code=400,
    )
    DeadLetter.objects.create(endpoint="/webhooks/mailgun/", error="plain", status_code=400)
    out = io.StringIO()

    call_command("events", "list", stdout=out)

    rows = out.getvalue().splitlines()
    assert len(rows) == 2
    assert any(
        row.endswith("/webhooks/postmark/  bad payload: line two line three") for row in rows
    )
