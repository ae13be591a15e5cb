"""Writes each accepted message to ``OUTREACH_OUTBOX_DIR`` as ``<message id>-<uuid>.eml``."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from django.conf import settings

from outreach.providers.base import Envelope, Provider, SendError, SendResult


class SandboxProvider(Provider):
    kind = "sandbox"
    needs_dkim_signature = True

    def send(self, raw_message: bytes, envelope: Envelope) -> SendResult:
        outbox = Path(self.settings.get("outbox_dir") or settings.OUTREACH_OUTBOX_DIR)
        provider_id = uuid.uuid4().hex
        path = outbox / f"{envelope.message_id}-{provider_id}.eml"
        try:
            outbox.mkdir(parents=True, exist_ok=True)
            # Written under a temporary name and renamed, so a reader never sees half a file.
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(raw_message)
            os.replace(tmp, path)
        except OSError as exc:
            raise SendError(f"sandbox outbox not writable: {exc}") from exc
        return SendResult(provider_message_id=provider_id, code="250", response=str(path.name))

    def find_sent(self, message_id_header: str, envelope: Envelope) -> bool | None:
        """The outbox holds every accepted message: one of this message's files with that
        Message-ID (a retry of the message writes a file of its own)."""
        outbox = Path(self.settings.get("outbox_dir") or settings.OUTREACH_OUTBOX_DIR)
        header = f"Message-ID: {message_id_header}".encode()
        try:
            return any(
                header in path.read_bytes() for path in outbox.glob(f"{envelope.message_id}-*.eml")
            )
        except OSError as exc:
            raise SendError(f"sandbox outbox not readable: {exc}") from exc
