"""The sandbox provider: every message accepted and written as an .eml file."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest

from outreach.campaigns.models import Message
from outreach.providers import mime
from outreach.providers.base import Envelope
from outreach.providers.sandbox.sender import SandboxProvider
from outreach.providers.tests.test_mime import _outgoing
from outreach.sending.engine import send_due
from outreach.sending.tests.helpers import claimed_campaign_messages
from outreach.testing import make_provider


def test_it_writes_each_message_as_an_eml_file(tmp_path: Path) -> None:
    provider = SandboxProvider({"outbox_dir": str(tmp_path)}, {})
    raw = mime.build(_outgoing())

    result = provider.send(raw, Envelope("a@send1.example.com", "b@prospect.example.org", 42))

    (path,) = tmp_path.glob("*.eml")
    assert path.name == f"42-{result.provider_message_id}.eml"
    assert path.read_bytes() == raw


@pytest.mark.django_db
def test_it_is_what_the_engine_sends_through_by_default(settings: object) -> None:
    messages = claimed_campaign_messages(3, provider=make_provider())

    assert send_due() == 3

    outbox = Path(settings.OUTREACH_OUTBOX_DIR)  # type: ignore[attr-defined]
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 3
    tags = sorted(
        int(message_from_bytes(f.read_bytes(), policy=policy.default)["X-Outreach-Message"])
        for f in files
    )
    assert tags == [m.pk for m in messages]
    assert set(Message.objects.values_list("state", flat=True)) == {"sent"}
