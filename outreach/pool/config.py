"""Configuration as code: ``outreach apply FILE.toml`` makes the database match the file's pool.

Two stages:

1. :func:`parse` turns the TOML text into a :class:`PoolSpec`, strictly: an unknown key, a
   malformed address, a mailbox whose domain is not declared, a duplicate, a negative or
   non-integer cap, or an undefined provider is a :class:`ConfigError` naming the key (and the
   line, where it can be found). Nothing touches the database.
2. :func:`apply` compares the spec with the database and writes the difference in one
   transaction, returning what changed. It never deletes: a mailbox or domain missing from the
   file is retired, a provider missing from the file is disabled. A mailbox's state comes from
   the file only when it is created (health rules own it afterwards).

Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from email_validator import EmailNotValidError, validate_email

from outreach.lib import clock, tomlcheck
from outreach.lib import secrets as secret_refs
from outreach.pool import policy
from outreach.pool.models import (
    IMAP_SECURITY,
    Domain,
    Mailbox,
    PoolSettings,
    ProviderAccount,
    StateChange,
)
from outreach.pool.states import transition_domain, transition_mailbox
from outreach.providers.base import SendingLimits, provider_class
from outreach.providers.oauth2 import parse_service_account
from outreach.providers.smtp.sender import SECURITY_CHOICES

ACTOR = "config:apply"


class ConfigError(Exception):
    """A problem in the configuration file; the message names the key (and line when known)."""


# Options each provider kind takes: (plain settings, secret settings).
PROVIDER_OPTIONS: dict[str, tuple[set[str], set[str]]] = {
    "sandbox": ({"outbox_dir"}, set()),
    "smtp": (
        {
            "host",
            "port",
            "security",
            "username",
            "timeout",
            "ca_file",
            "max_per_connection",
            "local_hostname",
        },
        {"password"},
    ),
    "ses": (
        {"region", "configuration_set", "endpoint_url"},
        {"access_key_id", "secret_access_key"},
    ),
    "google": (
        {
            "host",
            "port",
            "security",
            "timeout",
            "ca_file",
            "max_per_connection",
            "local_hostname",
            "client_id",
            "token_uri",
        },
        {"service_account_key", "client_secret"},
    ),
    "microsoft": (
        {
            "host",
            "port",
            "security",
            "timeout",
            "ca_file",
            "max_per_connection",
            "local_hostname",
            "tenant_id",
            "client_id",
        },
        {"client_secret"},
    ),
    "mailgun": ({"sender_domain", "api_url"}, {"api_key", "webhook_signing_key"}),
    "postmark": ({"message_stream"}, {"server_token"}),
}
PROVIDER_COMMON = {"kind", "standby", "price_per_1000", "max_send_rate"}
# A Google service account's key is named by its file; apply stores its content encrypted,
# so workers on other machines need no copy of the file.
KEY_FILE_OPTION = "service_account_file"
# SMTP options that must be positive numbers (whole where the sender counts them).
SMTP_WHOLE = ("port", "max_per_connection")

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


# --------------------------------------------------------------------------------------------
# Parsing


class _Reader:
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


def parse(text: str, base_dir: Path | None = None) -> PoolSpec:
    """The pool described by ``text``; raises ConfigError on the first problem found.

    Files it names (a service-account key) are read relative to ``base_dir`` (the pool
    file's folder; default: the working directory)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    r = _Reader(text)
    oversized = tomlcheck.oversized_integer(data)
    if oversized:
        key, value = oversized
        raise r.error(key, f"{value} does not fit in 64 bits (TOML integers are 64-bit)", value)
    r.known(data, TOP_KEYS, "")

    timezone = r.string(data, "timezone", "", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.error("timezone", f"unknown time zone {timezone!r}", timezone) from None

    limits = _parse_limits(r, r.table(data.get("limits", {}), "limits"))
    warmup, seeds = _parse_warmup(r, r.table(data.get("warmup", {}), "warmup"))
    thresholds = _parse_thresholds(r, r.table(data.get("thresholds", {}), "thresholds"))
    providers = _parse_providers(
        r, r.table(data.get("providers", {}), "providers"), base_dir or Path.cwd()
    )
    provider_names = {p.name for p in providers}
    domains = _parse_domains(r, data.get("domains", []), provider_names)
    _check_provider_limits(r, limits, providers, domains)
    webhooks = _parse_webhooks(r, data.get("webhooks", []))
    return PoolSpec(timezone, limits, warmup, thresholds, seeds, providers, domains, webhooks)


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


def _webhook_section() -> WebhookSection:
    if _webhooks is None:
        raise RuntimeError("no [[webhooks]] owner registered: is outreach.events installed?")
    return _webhooks


def _parse_webhooks(r: _Reader, raw: Any) -> list[WebhookSpec]:
    if not isinstance(raw, list):
        raise r.error("webhooks", "expected [[webhooks]] tables")
    specs: list[WebhookSpec] = []
    for i, item in enumerate(raw):
        key = f"webhooks[{i}]"
        body = r.table(item, key)
        r.known(body, WEBHOOK_KEYS, key)
        name = r.string(body, "name", key)
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
            raise r.error(f"{key}.name", "a short name of a-z, 0-9, - and _", name)
        if name in {s.name for s in specs}:
            raise r.error(f"{key}.name", f"duplicate webhook {name!r}", name)
        url = r.string(body, "url", key)
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise r.error(f"{key}.url", f"expected an http(s) URL, got {url!r}", url)
        if "secret" not in body:
            raise r.error(f"{key}.secret", "a webhook needs a signing secret (whsec_...)")
        secret = r.secret(body["secret"], f"{key}.secret")
        events = body.get("events", [])
        event_types = _webhook_section().event_types
        if not isinstance(events, list) or any(e not in event_types for e in events):
            raise r.error(f"{key}.events", f"a list of: {', '.join(event_types)}", None)
        specs.append(WebhookSpec(name, url, secret, list(events)))
    return specs


def _check_provider_limits(
    r: _Reader,
    limits: policy.Limits,
    providers: list[ProviderSpec],
    domains: list[DomainSpec],
) -> None:
    """A mailbox's cap and pacing must stay inside its provider's own sending limits
    (outreach.providers.base.SendingLimits): past them the provider refuses or blocks."""
    by_name = {p.name: p for p in providers}
    for i, ds in enumerate(domains):
        for j, ms in enumerate(ds.mailboxes):
            account = by_name[ms.provider or ds.provider]
            known = sending_limits(account.kind)
            if known is None:
                continue
            key = f"domains[{i}].mailboxes[{j}]"
            cap = ms.daily_cap if ms.daily_cap is not None else limits.mailbox_daily_cap
            if known.messages_per_day is not None and cap > known.messages_per_day:
                raise r.error(
                    f"{key}.daily_cap" if ms.daily_cap is not None else "limits.mailbox_daily_cap",
                    f"{ms.address} may send {cap} a day, above {account.kind}'s limit of "
                    f"{known.messages_per_day} ({known.reason})",
                )
            if known.min_gap_seconds and limits.pacing_gap_seconds < known.min_gap_seconds:
                raise r.error(
                    "limits.pacing_gap_seconds",
                    f"{limits.pacing_gap_seconds} s between sends of {ms.address} is faster "
                    f"than {account.kind} allows ({known.reason})",
                )


def sending_limits(kind: str) -> SendingLimits | None:
    if kind not in PROVIDER_OPTIONS or kind in ("sandbox",):
        return None
    return provider_class(kind).limits


def _parse_limits(r: _Reader, data: dict[str, Any]) -> policy.Limits:
    r.known(data, LIMIT_KEYS, "limits")
    values: dict[str, Any] = {}
    for name in BOOLEAN_LIMITS & data.keys():
        if not isinstance(data[name], bool):
            raise r.error(f"limits.{name}", f"expected true or false, got {data[name]!r}")
        values[name] = data[name]
    for name in (LIMIT_KEYS - BOOLEAN_LIMITS) & data.keys():
        cap = r.cap(data, name, "limits")
        if cap == 0 and name in OPTIONAL_LIMITS:
            cap = None  # 0 = no such cap, for the optional ones
        values[name] = cap
    return policy.Limits(**values)


def _parse_warmup(
    r: _Reader, data: dict[str, Any]
) -> tuple[policy.WarmupSchedule, list[str | dict[str, Any]]]:
    r.known(data, WARMUP_KEYS, "warmup")
    values: dict[str, Any] = {}
    for name in WARMUP_KEYS - {"seeds", "daily_growth"}:
        if name in data:
            values[name] = r.cap(data, name, "warmup")
    if "daily_growth" in data:
        growth = data["daily_growth"]
        if isinstance(growth, bool) or not isinstance(growth, int | float) or not 0 < growth <= 1:
            raise r.error("warmup.daily_growth", f"expected a fraction in (0, 1], got {growth!r}")
        values["daily_growth"] = float(growth)
    seeds_raw = data.get("seeds", [])
    if not isinstance(seeds_raw, list):
        raise r.error("warmup.seeds", "expected a list of addresses")
    seeds = [_parse_seed(r, s, f"warmup.seeds[{i}]") for i, s in enumerate(seeds_raw)]
    return policy.WarmupSchedule(**values), seeds


SEED_KEYS = {
    "address",
    "imap_host",
    "imap_port",
    "imap_security",
    "imap_username",
    "imap_password",
    "spam_folders",
}


def _parse_seed(r: _Reader, value: Any, key: str) -> str | dict[str, Any]:
    """A seed: an address, or a table whose IMAP access lets the placement checks read its
    spam folders (outreach.events.seeds)."""
    if not isinstance(value, dict):
        return r.address(value, key)
    r.known(value, SEED_KEYS, key)
    address = r.address(value.get("address"), f"{key}.address")
    if set(value) == {"address"}:
        return address
    host = value.get("imap_host")
    if not isinstance(host, str) or not host.strip():
        raise r.error(f"{key}.imap_host", "a seed with IMAP settings needs imap_host", host)
    _check_imap(r, value, key)
    seed: dict[str, Any] = {"address": address, "imap_host": host.strip()}
    seed["imap_security"] = value.get("imap_security", "ssl")
    if "imap_port" in value:
        seed["imap_port"] = value["imap_port"]
    if "imap_username" in value:
        username = value["imap_username"]
        if not isinstance(username, str) or not username:
            raise r.error(f"{key}.imap_username", "expected a login name", username)
        seed["imap_username"] = username
    if "imap_password" not in value:
        raise r.error(f"{key}.imap_password", "a seed with IMAP settings needs imap_password")
    seed["imap_password"] = r.secret(value["imap_password"], f"{key}.imap_password")
    if "spam_folders" in value:
        folders = value["spam_folders"]
        if not isinstance(folders, list) or not all(
            isinstance(f, str) and 0 < len(f) <= 255 for f in folders
        ):
            raise r.error(f"{key}.spam_folders", "expected a list of folder names", None)
        seed["spam_folders"] = folders
    return seed


def _parse_thresholds(r: _Reader, data: dict[str, Any]) -> policy.Thresholds:
    r.known(data, THRESHOLD_KEYS, "thresholds")
    for name, value in data.items():
        if name == "preset":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise r.error(f"thresholds.{name}", f"expected a non-negative number, got {value!r}")
    try:
        return policy.Thresholds.from_dict(data)
    except ValueError as exc:
        key = "preset" if "preset" in str(exc) else str(exc).split()[0]
        raise r.error(f"thresholds.{key}", str(exc), data.get(key)) from None


def _parse_providers(r: _Reader, data: dict[str, Any], base_dir: Path) -> list[ProviderSpec]:
    specs = []
    for name, raw in data.items():
        key = f"providers.{name}"
        body = r.table(raw, key)
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
            raise r.error(key, "a provider name is lower-case letters, digits, - and _")
        kind = body.get("kind")
        if kind not in PROVIDER_OPTIONS:
            raise r.error(
                f"{key}.kind", f"expected one of {', '.join(PROVIDER_OPTIONS)}, got {kind!r}", kind
            )
        plain_keys, secret_keys = PROVIDER_OPTIONS[kind]
        file_option = {KEY_FILE_OPTION} if "service_account_key" in secret_keys else set()
        r.known(body, PROVIDER_COMMON | plain_keys | secret_keys | file_option, key)
        key_file = _read_key_file(r, body, key, base_dir) if file_option else {}
        standby = body.get("standby")
        if standby is not None and (standby not in data or standby == name):
            raise r.error(f"{key}.standby", f"provider {standby!r} is not defined", standby)
        if kind in ("smtp", "google", "microsoft"):
            _check_smtp(r, body, key)
        rate = body.get("max_send_rate")
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0
        ):
            raise r.error(f"{key}.max_send_rate", f"expected a positive number, got {rate!r}")
        specs.append(
            ProviderSpec(
                name=name,
                kind=kind,
                settings={k: body[k] for k in sorted(plain_keys & body.keys())},
                secrets={
                    **{
                        k: r.secret(body[k], f"{key}.{k}")
                        for k in sorted(secret_keys & body.keys())
                    },
                    **key_file,
                },
                standby=standby,
                price_per_1000=r.decimal(body, "price_per_1000", key),
                max_send_rate=float(rate) if rate is not None else None,
            )
        )
    return specs


def _read_key_file(r: _Reader, body: dict[str, Any], key: str, base_dir: Path) -> dict[str, str]:
    """The service-account key named by ``service_account_file``, checked (JSON with the
    fields Google's token request needs) and ready to be stored encrypted."""
    name = body.get(KEY_FILE_OPTION)
    if name is None:
        return {}
    option = f"{key}.{KEY_FILE_OPTION}"
    if "service_account_key" in body:
        raise r.error(option, "give the key as a file or as service_account_key, not both")
    if not isinstance(name, str) or not name:
        raise r.error(option, f"expected a file name, got {name!r}", name)
    path = Path(name) if Path(name).is_absolute() else base_dir / name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise r.error(option, f"cannot read {path}: {exc}", name) from None
    try:
        parse_service_account(text)
    except ValueError as exc:
        raise r.error(option, f"{path} is not a service-account key: {exc}", name) from None
    return {"service_account_key": "plain:" + text}


def _check_smtp(r: _Reader, body: dict[str, Any], key: str) -> None:
    """The SMTP sender's options, refused here rather than at the first send."""
    for name in SMTP_WHOLE:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise r.error(f"{key}.{name}", f"expected a whole number, got {value!r}", value)
        if value is not None and value <= 0:
            raise r.error(f"{key}.{name}", f"must be positive, got {value!r}", value)
    timeout = body.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise r.error(f"{key}.timeout", f"expected a positive number of seconds, got {timeout!r}")
    security = body.get("security")
    if security is not None and security not in SECURITY_CHOICES:
        raise r.error(
            f"{key}.security", f"expected one of {', '.join(SECURITY_CHOICES)}, got {security!r}"
        )
    for name in ("host", "username", "ca_file", "local_hostname"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise r.error(f"{key}.{name}", f"expected a string, got {value!r}", value)


def _parse_domains(r: _Reader, raw: Any, providers: set[str]) -> list[DomainSpec]:
    if not isinstance(raw, list):
        raise r.error("domains", "expected an array of tables ([[domains]])")
    domains: list[DomainSpec] = []
    seen_domains: set[str] = set()
    seen_addresses: set[str] = set()
    for i, item in enumerate(raw):
        key = f"domains[{i}]"
        body = r.table(item, key)
        r.known(body, DOMAIN_KEYS, key)
        name = r.string(body, "name", key).strip().lower()
        if not DOMAIN_NAME.match(name):
            raise r.error(
                f"{key}.name", f"not a domain name: {body.get('name')!r}", body.get("name")
            )
        if name in seen_domains:
            raise r.error(f"{key}.name", f"domain {name} is declared twice", name)
        seen_domains.add(name)
        provider = r.string(body, "provider", key)
        if provider not in providers:
            raise r.error(
                f"{key}.provider", f"provider {provider!r} is not defined", provider or None
            )
        mailboxes_raw = body.get("mailboxes", [])
        if not isinstance(mailboxes_raw, list):
            raise r.error(f"{key}.mailboxes", "expected an array of tables")
        mailboxes = []
        for j, mb_raw in enumerate(mailboxes_raw):
            mb = _parse_mailbox(r, mb_raw, f"{key}.mailboxes[{j}]", providers)
            if mb.address.rpartition("@")[2] != name:
                raise r.error(
                    f"{key}.mailboxes[{j}].address",
                    f"{mb.address} is not on domain {name}; declare its domain first",
                    mb_raw.get("address"),
                )
            if mb.address in seen_addresses:
                raise r.error(
                    f"{key}.mailboxes[{j}].address",
                    f"duplicate mailbox {mb.address}",
                    mb_raw.get("address"),
                )
            seen_addresses.add(mb.address)
            mailboxes.append(mb)
        domains.append(
            DomainSpec(
                name=name,
                provider=provider,
                daily_cap=r.cap(body, "daily_cap", key),
                yearly_price=r.decimal(body, "yearly_price", key),
                dkim_selector=r.string(body, "dkim_selector", key),
                mail_from=r.string(body, "mail_from", key).lower(),
                mailboxes=mailboxes,
                tracking_host=_tracking_host(r, body, key, name),
            )
        )
    return domains


def _check_imap(r: _Reader, body: dict[str, Any], key: str) -> None:
    """The IMAP options of a mailbox or a seed (docs/events.md), refused here rather than at
    the first poll."""
    security = body.get("imap_security")
    if security is not None and security not in IMAP_SECURITY:
        raise r.error(
            f"{key}.imap_security", f"expected ssl, starttls or plain, got {security!r}", security
        )
    port = body.get("imap_port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
    ):
        raise r.error(f"{key}.imap_port", f"expected a port number, got {port!r}", port)
    folders = body.get("imap_folders")
    if folders is not None and (
        not isinstance(folders, list)
        or not folders
        or not all(isinstance(f, str) and 0 < len(f) <= 255 for f in folders)
    ):
        raise r.error(f"{key}.imap_folders", "expected a list of folder names")


def _tracking_host(r: _Reader, body: dict[str, Any], key: str, domain: str) -> str:
    """The domain's own tracking host: the domain itself or a host under it, so that no two
    domains share one (blank = t.<domain>)."""
    host = r.string(body, "tracking_host", key).strip().lower().rstrip(".")
    own = host == domain or host.endswith("." + domain)
    if host and (not DOMAIN_NAME.match(host) or not own):
        raise r.error(
            f"{key}.tracking_host",
            f"{host!r} must be a host of {domain} (for example t.{domain})",
            body.get("tracking_host"),
        )
    return host


def _parse_mailbox(r: _Reader, raw: Any, key: str, providers: set[str]) -> MailboxSpec:
    body = r.table(raw, key)
    r.known(body, MAILBOX_KEYS | MAILBOX_SETTINGS | MAILBOX_SECRETS, key)
    if "address" not in body:
        raise r.error(f"{key}.address", "missing")
    address = r.address(body["address"], f"{key}.address")
    state = r.string(body, "state", key, "")
    warmup = body.get("warmup", True)
    if not isinstance(warmup, bool):
        raise r.error(f"{key}.warmup", f"expected true or false, got {warmup!r}")
    if state and state not in ("warming", "active"):
        raise r.error(f"{key}.state", f"a new mailbox is warming or active, got {state!r}", state)
    provider = body.get("provider")
    if provider is not None and provider not in providers:
        raise r.error(f"{key}.provider", f"provider {provider!r} is not defined", provider)
    _check_imap(r, body, key)
    reply_to = body.get("reply_to", "")
    return MailboxSpec(
        address=address,
        display_name=r.string(body, "display_name", key),
        reply_to=r.address(reply_to, f"{key}.reply_to") if reply_to else "",
        daily_cap=r.cap(body, "daily_cap", key),
        state=state or ("warming" if warmup else "active"),
        provider=provider,
        settings={k: body[k] for k in sorted(MAILBOX_SETTINGS & body.keys())},
        secrets={k: r.secret(body[k], f"{key}.{k}") for k in sorted(MAILBOX_SECRETS & body.keys())},
    )


# --------------------------------------------------------------------------------------------
# Applying


def apply(spec: PoolSpec, *, dry_run: bool = False) -> Plan:
    """Make the database match ``spec`` in one transaction; a dry run rolls it back."""
    plan = Plan()
    with transaction.atomic():
        _apply_settings(spec, plan)
        providers = _apply_providers(spec, plan)
        today = clock.today(spec.timezone)
        _apply_domains(spec, providers, today, plan)
        _webhook_section().apply(spec.webhooks, plan)
        if dry_run:
            transaction.set_rollback(True)
    return plan


def diff(obj: Any, wanted: dict[str, Any]) -> list[str]:
    """Set ``wanted`` on ``obj``; the 'field: old → new' lines of what differed."""
    lines = []
    for name, value in wanted.items():
        old = getattr(obj, name)
        if old != value:
            lines.append(f"{name}: {_show(old)} → {_show(value)}")
            setattr(obj, name, value)
    return lines


def _show(value: Any) -> str:
    if isinstance(value, ProviderAccount):
        return value.name
    return "-" if value is None or value == "" else str(value)


def _apply_settings(spec: PoolSpec, plan: Plan) -> None:
    pool = PoolSettings.load()
    wanted = {
        "timezone": spec.timezone,
        "limits_json": spec.limits.to_dict(),
        "warmup_json": spec.warmup.to_dict(),
        "thresholds_json": spec.thresholds.to_dict(),
        "seed_addresses": [_stored_seed(seed, pool.seed_addresses) for seed in spec.seeds],
    }
    lines = diff(pool, wanted)
    if lines:
        pool.updated_at = clock.now()
        pool.save()
        for line in lines:
            plan.add(f"update pool settings: {line}")


def _stored_seed(seed: str | dict[str, Any], stored: Any) -> str | dict[str, Any]:
    """A seed as stored: its IMAP password encrypted (kept as it was when unchanged)."""
    if isinstance(seed, str):
        return seed
    old = next(
        (s for s in stored or [] if isinstance(s, dict) and s.get("address") == seed["address"]),
        {},
    )
    secret = {"imap_password": seed["imap_password"]}
    stored_secret = {"imap_password": str(old.get("imap_password", ""))}
    return {**seed, **resolve_secrets(secret, stored_secret)}


def resolve_secrets(wanted: dict[str, str], stored: dict[str, str]) -> dict[str, str]:
    """Secret refs to store: env refs as they are; plain values encrypted, unless unchanged."""
    result = {}
    for name, ref in wanted.items():
        if ref.startswith("plain:"):
            plain = ref.removeprefix("plain:")
            old = stored.get(name, "")
            try:
                unchanged = old.startswith("enc:") and secret_refs.resolve(old) == plain
            except secret_refs.SecretError:
                unchanged = False
            try:
                result[name] = old if unchanged else secret_refs.encrypt(plain)
            except secret_refs.SecretError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        else:
            result[name] = ref
    return result


def _apply_providers(spec: PoolSpec, plan: Plan) -> dict[str, ProviderAccount]:
    existing = {p.name: p for p in ProviderAccount.objects.all()}
    by_name: dict[str, ProviderAccount] = {}
    for ps in spec.providers:
        account = existing.get(ps.name)
        created = account is None
        if account is None:
            account = ProviderAccount(name=ps.name, kind=ps.kind)
        wanted = {
            "kind": ps.kind,
            "settings": ps.settings,
            "secrets": resolve_secrets(ps.secrets, account.secrets or {}),
            "price_per_1000": ps.price_per_1000,
            "max_send_rate": ps.max_send_rate,
            "enabled": True,
        }
        lines = diff(account, wanted)
        if created or lines:
            account.save()
        if created:
            plan.add(f"create provider {ps.name} ({ps.kind})")
        else:
            plan.changes.extend(f"update provider {ps.name}: {line}" for line in lines)
        by_name[ps.name] = account
    for ps in spec.providers:  # standby links, once every account exists
        account = by_name[ps.name]
        standby = by_name[ps.standby] if ps.standby else None
        if account.standby_id != (standby.pk if standby else None):
            plan.add(f"update provider {ps.name}: standby → {_show(standby)}")
            account.standby = standby
            account.save(update_fields=["standby"])
    for name, account in existing.items():
        if name not in by_name and account.enabled:
            account.enabled = False
            account.save(update_fields=["enabled"])
            plan.add(f"disable provider {name} (not in the file)")
    return by_name


def _apply_domains(
    spec: PoolSpec, providers: dict[str, ProviderAccount], today: date, plan: Plan
) -> None:
    domains = {d.name: d for d in Domain.objects.all()}
    mailboxes = {m.address: m for m in Mailbox.objects.select_related("domain")}
    wanted_addresses: set[str] = set()
    for ds in spec.domains:
        domain = domains.get(ds.name)
        created = domain is None
        if domain is None:
            domain = Domain(name=ds.name, provider=providers[ds.provider])
        lines = diff(
            domain,
            {
                "provider": providers[ds.provider],
                "daily_cap": ds.daily_cap,
                "yearly_price": ds.yearly_price,
                "dkim_selector": ds.dkim_selector,
                "mail_from": ds.mail_from,
                "tracking_host": ds.tracking_host,
            },
        )
        if created or lines:
            domain.save()
        if created:
            plan.add(f"create domain {ds.name}")
        else:
            plan.changes.extend(f"update domain {ds.name}: {line}" for line in lines)
        if domain.state == Domain.State.RETIRED:
            Domain.objects.filter(pk=domain.pk).update(state=Domain.State.ACTIVE)
            StateChange.objects.create(
                domain=domain,
                from_state=Domain.State.RETIRED,
                to_state=Domain.State.ACTIVE,
                reason="back in the configuration file",
                actor=ACTOR,
            )
            plan.add(f"reinstate domain {ds.name}")
        for ms in ds.mailboxes:
            wanted_addresses.add(ms.address)
            _apply_mailbox(ms, domain, providers, mailboxes.get(ms.address), today, plan)

    for address, mailbox in mailboxes.items():
        if address not in wanted_addresses and mailbox.state != Mailbox.State.RETIRED:
            transition_mailbox(
                mailbox,
                Mailbox.State.RETIRED,
                reason="removed from the configuration file",
                actor=ACTOR,
            )
            plan.add(f"retire mailbox {address} (not in the file)")
    wanted_domains = {d.name for d in spec.domains}
    for name, domain in domains.items():
        if name not in wanted_domains and domain.state != Domain.State.RETIRED:
            transition_domain(
                domain,
                Domain.State.RETIRED,
                reason="removed from the configuration file",
                actor=ACTOR,
            )
            plan.add(f"retire domain {name} (not in the file)")


def _apply_mailbox(
    ms: MailboxSpec,
    domain: Domain,
    providers: dict[str, ProviderAccount],
    mailbox: Mailbox | None,
    today: date,
    plan: Plan,
) -> None:
    created = mailbox is None
    if mailbox is None:
        mailbox = Mailbox(address=ms.address, domain=domain, state=ms.state)
        if ms.state == Mailbox.State.WARMING:
            mailbox.warmup_started_on = today
    lines = diff(
        mailbox,
        {
            "domain": domain,
            "display_name": ms.display_name,
            "reply_to": ms.reply_to,
            "daily_cap": ms.daily_cap,
            "provider": providers[ms.provider] if ms.provider else None,
            "settings": ms.settings,
            "secrets": {
                **resolve_secrets(ms.secrets, mailbox.secrets or {}),
                **{
                    name: ref
                    for name, ref in (mailbox.secrets or {}).items()
                    if name in CONNECTED_SECRETS and name not in ms.secrets
                },
            },
        },
    )
    if created:
        mailbox.save()
        StateChange.objects.create(
            mailbox=mailbox,
            domain=domain,
            from_state="",
            to_state=ms.state,
            reason="declared in the configuration file",
            actor=ACTOR,
        )
        plan.add(f"create mailbox {ms.address} ({ms.state})")
        return
    if lines:
        mailbox.save()
        plan.changes.extend(f"update mailbox {ms.address}: {line}" for line in lines)
    if mailbox.state == Mailbox.State.RETIRED:
        # Put back in the file: it re-enters the pool through warm-up, never straight to active.
        Mailbox.objects.filter(pk=mailbox.pk).update(
            state=Mailbox.State.WARMING, warmup_started_on=today, warmup_start_day=1
        )
        StateChange.objects.create(
            mailbox=mailbox,
            domain=domain,
            from_state=Mailbox.State.RETIRED,
            to_state=Mailbox.State.WARMING,
            reason="back in the configuration file",
            actor=ACTOR,
        )
        plan.add(f"reinstate mailbox {ms.address} (warming)")
