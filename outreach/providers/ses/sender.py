"""SES v2 ``SendEmail`` with raw content, and the account's health from ``GetAccount``.

Account ``settings``: ``region`` (required), ``configuration_set`` (event publishing to the
webhook), ``endpoint_url`` (a VPC endpoint or a local stand-in). Secrets, optional (else the
standard AWS credential chain: instance role, ``AWS_*`` variables): ``access_key_id``,
``secret_access_key``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from outreach.providers.base import (
    Envelope,
    Health,
    Outcome,
    Provider,
    SendError,
    SendResult,
)

# Error codes of SESv2 SendEmail (API reference, "Errors") and what they mean for us.
_TRANSIENT_CODES = {
    "TooManyRequestsException",  # 429: throttled, over MaxSendRate
    "Throttling",
    "ThrottlingException",
    "LimitExceededException",  # daily quota reached: tomorrow works again
    "SendingPausedException",  # sending paused for the account or configuration set
    "InternalFailure",
    "ServiceUnavailable",
}
_AUTH_CODES = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
}
# The account is not allowed to send at all: the circuit breaker should fail over.
ACCOUNT_DOWN_CODES = {"SendingPausedException", "AccountSuspendedException"}

# SES accounts near their 24-hour quota are reported unhealthy before they hit it.
QUOTA_HEADROOM = 0.95


class SesProvider(Provider):
    kind = "ses"
    needs_dkim_signature = False  # Easy DKIM signs at SES

    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        super().__init__(settings, secrets)
        region = str(self.settings.get("region") or "")
        if not region:
            raise SendError("ses: no region configured", kind=Outcome.AUTH_FAILED)
        credentials: dict[str, str] = {}
        if self.secrets.get("access_key_id"):
            credentials = {
                "aws_access_key_id": self.secrets["access_key_id"],
                "aws_secret_access_key": self.secrets.get("secret_access_key", ""),
            }
        self.client = boto3.session.Session().client(
            "sesv2",
            region_name=region,
            endpoint_url=self.settings.get("endpoint_url") or None,
            config=Config(
                connect_timeout=10,
                read_timeout=30,
                # The engine retries with its own backoff and bookkeeping; a silent retry
                # inside botocore could send a message twice after a read timeout.
                retries={"max_attempts": 1, "mode": "standard"},
            ),
            **credentials,
        )

    def send(self, raw_message: bytes, envelope: Envelope) -> SendResult:
        request: dict[str, Any] = {
            "FromEmailAddress": envelope.sender,
            "Destination": {"ToAddresses": [envelope.recipient]},
            "Content": {"Raw": {"Data": raw_message}},
            # Echoed in every event SES publishes for this message (webhook matching).
            "EmailTags": [{"Name": "outreach_message", "Value": str(envelope.message_id)}],
        }
        if self.settings.get("configuration_set"):
            request["ConfigurationSetName"] = self.settings["configuration_set"]
        try:
            response = self.client.send_email(**request)
        except ClientError as exc:
            raise _classify(exc) from exc
        except BotoCoreError as exc:  # connection refused, timeouts: never got an answer
            raise SendError(f"ses: {exc}", kind=Outcome.TRANSIENT) from exc
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)
        return SendResult(
            provider_message_id=str(response["MessageId"]),
            code=str(status),
            response=f"MessageId {response['MessageId']}",
        )

    def check_health(self) -> Health:
        """``GetAccount``: sending enabled, enforcement status, 24-hour quota and rate."""
        try:
            account = self.client.get_account()
        except (ClientError, BotoCoreError) as exc:
            return Health(healthy=False, reason=f"GetAccount failed: {exc}")
        return health_from_account(account)

    def close(self) -> None:
        self.client.close()


def health_from_account(account: Mapping[str, Any]) -> Health:
    """The verdict on a ``GetAccount`` response (a pure function, testable on payloads)."""
    quota = account.get("SendQuota") or {}
    max_24h = float(quota.get("Max24HourSend") or 0)
    sent_24h = float(quota.get("SentLast24Hours") or 0)
    rate = quota.get("MaxSendRate")
    status = str(account.get("EnforcementStatus") or "")
    problems = []
    if not account.get("SendingEnabled", True):
        problems.append("SendingEnabled is false")
    if status in ("PROBATION", "SHUTDOWN"):
        problems.append(f"EnforcementStatus is {status}")
    if max_24h > 0 and sent_24h >= QUOTA_HEADROOM * max_24h:
        problems.append(f"24-hour quota nearly used ({sent_24h:.0f}/{max_24h:.0f})")
    return Health(
        healthy=not problems,
        reason="; ".join(problems),
        figures={
            "sending_enabled": bool(account.get("SendingEnabled", True)),
            "enforcement_status": status,
            "max_24_hour_send": max_24h,
            "sent_last_24_hours": sent_24h,
            "max_send_rate": rate,
            "production_access": account.get("ProductionAccessEnabled"),
        },
        max_send_rate=float(rate) if rate is not None else None,
    )


def _classify(exc: ClientError) -> SendError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    text = f"{code}: {error.get('Message', '')}"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _TRANSIENT_CODES or (isinstance(status, int) and (status == 429 or status >= 500)):
        return SendError(text, kind=Outcome.TRANSIENT, code=code)
    if code in _AUTH_CODES or code == "AccountSuspendedException":
        return SendError(text, kind=Outcome.AUTH_FAILED, code=code)
    # MessageRejected (e.g. a virus, or an address on the account-level suppression list),
    # MailFromDomainNotVerifiedException, NotFoundException, BadRequestException.
    return SendError(text, kind=Outcome.PERMANENT, code=code)
