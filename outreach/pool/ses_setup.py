"""`outreach ses setup DOMAIN`: the SES side of a sending domain, through the SES v2 API.

1. The configuration set (``configuration_set`` of the provider account, default
   ``outreach``) and its event destination: an SNS topic subscribed to our
   ``/webhooks/amazon_ses/tracking/`` endpoint, publishing the events the webhooks turn into
   delivered/bounced/complained... Opens and clicks are left out on purpose: SES would add a
   tracking pixel and rewrite links, both spam signals in cold email.
2. The domain identity, created with that configuration set as its default (or read when it
   exists), and its Easy DKIM tokens.
3. The custom MAIL FROM host (default ``bounce.<domain>``), so SPF aligns for DMARC.
4. What it found is stored as the domain's :class:`SesIdentity`: the DKIM CNAMEs and MAIL FROM
   records then flow into ``outreach dns check`` and ``outreach dns plan``.

Every step is idempotent: run again, it changes nothing that is already right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from outreach.lib import clock, secrets
from outreach.pool.models import Domain, ProviderAccount, SesIdentity

DEFAULT_CONFIGURATION_SET = "outreach"
EVENT_DESTINATION = "outreach-webhooks"
# What the events collector understands (anymail's SES tracking webhook).
EVENT_TYPES = [
    "SEND",
    "REJECT",
    "BOUNCE",
    "COMPLAINT",
    "DELIVERY",
    "DELIVERY_DELAY",
    "RENDERING_FAILURE",
    "SUBSCRIPTION",
]


class SesSetupError(Exception):
    pass


@dataclass
class SetupResult:
    identity: SesIdentity
    steps: list[str] = field(default_factory=list)


def ses_client(account: ProviderAccount, region: str | None = None) -> Any:
    """A boto3 ``sesv2`` client for ``account`` (its region, endpoint and stored keys; without
    stored keys boto3's own chain: environment, instance role...)."""
    options: dict[str, Any] = {
        "region_name": region or account.settings.get("region") or "us-east-1",
    }
    if account.settings.get("endpoint_url"):
        options["endpoint_url"] = account.settings["endpoint_url"]
    refs = account.secrets or {}
    if "access_key_id" in refs and "secret_access_key" in refs:
        options["aws_access_key_id"] = secrets.resolve(refs["access_key_id"])
        options["aws_secret_access_key"] = secrets.resolve(refs["secret_access_key"])
    return boto3.client("sesv2", **options)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def setup_domain(
    domain: Domain,
    client: Any,
    *,
    region: str,
    mail_from: str | None = None,
    configuration_set: str | None = None,
    sns_topic_arn: str = "",
) -> SetupResult:
    """Steps 1-4 of the module doc for ``domain`` with the sesv2 ``client``."""
    config_set = (
        configuration_set
        or domain.provider.settings.get("configuration_set")
        or DEFAULT_CONFIGURATION_SET
    )
    mail_from = mail_from or domain.mail_from or f"bounce.{domain.name}"
    if mail_from != domain.name and not mail_from.endswith("." + domain.name):
        raise SesSetupError(f"MAIL FROM {mail_from} must be a subdomain of {domain.name}")
    steps: list[str] = []
    try:
        _configuration_set(client, config_set, sns_topic_arn, steps)
        identity = _identity(client, domain.name, config_set, steps)
        mail_from_status = _mail_from(client, domain.name, mail_from, identity, steps)
    except ClientError as exc:
        raise SesSetupError(f"SES: {exc}") from exc
    dkim = identity.get("DkimAttributes", {})
    stored, _ = SesIdentity.objects.update_or_create(
        domain=domain,
        defaults={
            "region": region,
            "dkim_tokens": list(dkim.get("Tokens", [])),
            "dkim_status": dkim.get("Status", ""),
            "verified_for_sending": bool(identity.get("VerifiedForSendingStatus")),
            "mail_from": mail_from,
            "mail_from_status": mail_from_status,
            "configuration_set": config_set,
            "updated_at": clock.now(),
        },
    )
    return SetupResult(stored, steps)


def _configuration_set(client: Any, name: str, topic_arn: str, steps: list[str]) -> None:
    try:
        client.create_configuration_set(
            ConfigurationSetName=name,
            ReputationOptions={"ReputationMetricsEnabled": True},
            SendingOptions={"SendingEnabled": True},
        )
        steps.append(f"created configuration set {name}")
    except ClientError as exc:
        if _code(exc) != "AlreadyExistsException":
            raise
        steps.append(f"configuration set {name} exists")
    if not topic_arn:
        steps.append("no SNS topic given (--sns-topic-arn): SES events will not reach the webhooks")
        return
    try:
        client.create_configuration_set_event_destination(
            ConfigurationSetName=name,
            EventDestinationName=EVENT_DESTINATION,
            EventDestination={
                "Enabled": True,
                "MatchingEventTypes": EVENT_TYPES,
                "SnsDestination": {"TopicArn": topic_arn},
            },
        )
        steps.append(f"created event destination {EVENT_DESTINATION} → {topic_arn}")
    except ClientError as exc:
        if _code(exc) != "AlreadyExistsException":
            raise
        steps.append(f"event destination {EVENT_DESTINATION} exists")


def _identity(client: Any, name: str, config_set: str, steps: list[str]) -> dict[str, Any]:
    try:
        identity: dict[str, Any] = client.get_email_identity(EmailIdentity=name)
    except ClientError as exc:
        if _code(exc) != "NotFoundException":
            raise
        created: dict[str, Any] = client.create_email_identity(
            EmailIdentity=name, ConfigurationSetName=config_set
        )
        steps.append(f"created SES identity {name}")
        return created
    steps.append(f"SES identity {name} exists ({identity.get('VerificationStatus', '?')})")
    if identity.get("ConfigurationSetName") != config_set:
        client.put_email_identity_configuration_set_attributes(
            EmailIdentity=name, ConfigurationSetName=config_set
        )
        steps.append(f"set {config_set} as the identity's default configuration set")
    return identity


def _mail_from(
    client: Any, name: str, mail_from: str, identity: dict[str, Any], steps: list[str]
) -> str:
    current = identity.get("MailFromAttributes", {})
    if current.get("MailFromDomain") == mail_from:
        steps.append(f"MAIL FROM {mail_from} set ({current.get('MailFromDomainStatus', '?')})")
        return str(current.get("MailFromDomainStatus", ""))
    client.put_email_identity_mail_from_attributes(
        EmailIdentity=name,
        MailFromDomain=mail_from,
        # Until the MX is in place SES falls back to amazonses.com rather than bouncing mail.
        BehaviorOnMxFailure="USE_DEFAULT_VALUE",
    )
    steps.append(f"set MAIL FROM {mail_from}")
    return "PENDING"
