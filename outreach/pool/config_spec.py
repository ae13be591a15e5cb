"""The vocabulary of ``pool.toml``: its keys, the values it parses into, and strict reading.

This module owns what the pool file may say and what it means once read: the allowed keys of
each table, :class:`PoolSpec` and the specs of providers, domains, mailboxes and webhooks,
:class:`ConfigError`, the :class:`Reader` whose accessors name the offending key (and its
line), the :class:`Plan` apply reports into, and the registry of the ``[[webhooks]]`` section's
owner. Parsing lives in :mod:`outreach.pool.config` and :mod:`outreach.pool.config_providers`,
writing to the database in :mod:`outreach.pool.config_apply`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from email_validator import EmailNotValidError, validate_email

from outreach.lib import secrets as secret_refs
from outreach.pool import policy


class ConfigError(Exception):
    """A problem in the configuration file; the message names the key (and line when known)."""


MAILBOX_SETTINGS = {
    "smtp_username",
    "imap_host",
    "imap_port",
    "imap_security",
    "imap_username",
    "imap_folders",
    # The Sent folder where the mailbox's provider files submitted mail (reconciliation).
    "imap_sent_folder",
    "dkim_selector",
}
MAILBOX_SECRETS = {"smtp_password", "imap_password", "dkim_private_key"}
# Secrets `outreach mailbox connect` stores on a mailbox: kept when the file is applied again.
CONNECTED_SECRETS = {"oauth_refresh_token"}
MAILBOX_KEYS = {"address", "display_name", "reply_to", "daily_cap", "warmup", "state", "provider"}
DOMAIN_KEYS = {
    "name",
    "provider",
    "daily_cap",
    "yearly_price",
    "dkim_selector",
    "mail_from",
    "tracking_host",
    "mailboxes",
}
TOP_KEYS = {"timezone", "limits", "warmup", "thresholds", "providers", "domains", "webhooks"}
WEBHOOK_KEYS = {"name", "url", "secret", "events"}
WARMUP_KEYS = {f.name for f in fields(policy.WarmupSchedule)} | {"seeds"}
LIMIT_KEYS = {f.name for f in fields(policy.Limits)}
THRESHOLD_KEYS = {f.name for f in fields(policy.Thresholds)}
OPTIONAL_LIMITS = {
    "campaign_daily_cap",
    "recipient_domain_daily_cap",
    "recipient_provider_hourly_cap",
}
BOOLEAN_LIMITS = {"prefer_same_provider"}
# Caps and counts are stored in the database's integer columns (32-bit on PostgreSQL).
MAX_WHOLE = 2**31 - 1
DOMAIN_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    kind: str
    settings: dict[str, Any]
    secrets: dict[str, str]  # option -> secret reference, or "plain:" + value to encrypt
    standby: str | None
    price_per_1000: Decimal
    max_send_rate: float | None


@dataclass(frozen=True)
class MailboxSpec:
    address: str
    display_name: str
    reply_to: str
    daily_cap: int | None
    state: str  # at creation: warming or active
    provider: str | None
    settings: dict[str, Any]
    secrets: dict[str, str]


@dataclass(frozen=True)
class DomainSpec:
    name: str
    provider: str
    daily_cap: int | None
    yearly_price: Decimal
    dkim_selector: str
    mail_from: str
    mailboxes: list[MailboxSpec]
    tracking_host: str = ""


@dataclass(frozen=True)
class WebhookSpec:
    """An outgoing webhook endpoint (outreach.events.outgoing)."""

    name: str
    url: str
    secret: str  # a secret reference, "plain:" + value until it is applied
    events: list[str]


@dataclass(frozen=True)
class PoolSpec:
    timezone: str
    limits: policy.Limits
    warmup: policy.WarmupSchedule
    thresholds: policy.Thresholds
    # An address, or a table with the IMAP access of a seed's placement checks (its password
    # a secret reference, "plain:" + value until it is applied).
    seeds: list[str | dict[str, Any]]
    providers: list[ProviderSpec]
    domains: list[DomainSpec]
    webhooks: list[WebhookSpec] = field(default_factory=list)


@dataclass
class Plan:
    """What apply changed (or would change, on a dry run): one readable line each."""

    changes: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.changes.append(line)


class Reader:
    """Strict accessors over the parsed TOML that name the offending key (and its line)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def error(self, key: str, problem: str, value: object = None) -> ConfigError:
        where = f"{key}: " if key else ""
        line = self._line_of(value)
        suffix = f" (line {line})" if line else ""
        return ConfigError(f"{where}{problem}{suffix}")

    def _line_of(self, value: object) -> int | None:
        if value is None or isinstance(value, dict | list | bool):
            return None
        needle = f'"{value}"' if isinstance(value, str) else str(value)
        hits = [n for n, line in enumerate(self.text.splitlines(), 1) if needle in line]
        return hits[0] if len(hits) == 1 else None

    def table(self, data: Any, key: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error(key, "expected a table")
        return data

    def known(self, data: dict[str, Any], allowed: set[str], key: str) -> None:
        for name in data:
            if name not in allowed:
                path = f"{key}.{name}" if key else name
                raise self.error(
                    path, f"unknown key (expected one of: {', '.join(sorted(allowed))})"
                )

    def cap(
        self, data: dict[str, Any], name: str, key: str, *, optional: bool = True
    ) -> int | None:
        if name not in data:
            return None
        value = data[name]
        path = f"{key}.{name}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, f"expected a whole number, got {value!r}", value)
        if value < 0:
            raise self.error(path, f"must not be negative, got {value}", value)
        if value > MAX_WHOLE:
            raise self.error(path, f"must be at most {MAX_WHOLE}, got {value}", value)
        return value

    def string(self, data: dict[str, Any], name: str, key: str, default: str = "") -> str:
        value = data.get(name, default)
        if not isinstance(value, str):
            raise self.error(f"{key}.{name}", f"expected a string, got {value!r}", value)
        return value

    def decimal(self, data: dict[str, Any], name: str, key: str) -> Decimal:
        value = data.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"{key}.{name}", f"expected a number, got {value!r}", value)
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            raise self.error(f"{key}.{name}", f"not a number: {value!r}", value) from None
        if result < 0:
            raise self.error(f"{key}.{name}", f"must not be negative, got {value}", value)
        return result

    def address(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"expected an email address, got {value!r}", value)
        try:
            # Syntax only: deliverability of our own sending addresses is the DNS check's job.
            return validate_email(value, check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            raise self.error(key, f"malformed address {value!r}: {exc}", value) from None

    def secret(self, value: Any, key: str) -> str:
        if isinstance(value, dict):
            if set(value) != {"env"} or not isinstance(value["env"], str):
                raise self.error(key, 'a secret is { env = "NAME" } or a plain string')
            try:
                return secret_refs.env_ref(value["env"])
            except secret_refs.SecretError as exc:
                raise self.error(key, str(exc), value["env"]) from None
        if isinstance(value, str):
            return "plain:" + value
        raise self.error(key, 'a secret is { env = "NAME" } or a plain string')


@dataclass(frozen=True)
class WebhookSection:
    """The ``[[webhooks]]`` section's owner: the events collector, which sits above the pool,
    registers it in ``EventsConfig.ready`` (:func:`register_webhook_section`)."""

    event_types: tuple[str, ...]
    apply: Callable[[list[WebhookSpec], Plan], None]


_webhooks: WebhookSection | None = None


def register_webhook_section(section: WebhookSection) -> None:
    global _webhooks
    _webhooks = section


def webhook_section() -> WebhookSection:
    if _webhooks is None:
        raise RuntimeError("no [[webhooks]] owner registered: is outreach.events installed?")
    return _webhooks
