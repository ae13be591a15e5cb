"""Configuration as code, stage one: parsing ``pool.toml`` into a :class:`PoolSpec`.

``outreach apply FILE.toml`` makes the database match the file's pool in two stages. This
module owns the first: :func:`parse` turns the TOML text into a
:class:`~outreach.pool.config_spec.PoolSpec`, strictly: an unknown key, a malformed address,
a mailbox whose domain is not declared, a duplicate, a negative or non-integer cap, or an
undefined provider is a :class:`~outreach.pool.config_spec.ConfigError` naming the key (and
the line, where it can be found). Nothing touches the database. The second stage,
:func:`outreach.pool.config_apply.apply`, writes the difference in one transaction; the
``[providers]`` tables are read by :mod:`outreach.pool.config_providers`.

Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from outreach.lib import tomlcheck
from outreach.pool import policy
from outreach.pool.config_providers import check_provider_limits, parse_providers
from outreach.pool.config_spec import (
    BOOLEAN_LIMITS,
    DOMAIN_KEYS,
    DOMAIN_NAME,
    LIMIT_KEYS,
    MAILBOX_KEYS,
    MAILBOX_SECRETS,
    MAILBOX_SETTINGS,
    OPTIONAL_LIMITS,
    THRESHOLD_KEYS,
    TOP_KEYS,
    WARMUP_KEYS,
    WEBHOOK_KEYS,
    ConfigError,
    DomainSpec,
    MailboxSpec,
    PoolSpec,
    Reader,
    WebhookSpec,
    webhook_section,
)
from outreach.pool.models import (
    IMAP_SECURITY,
)


def parse(text: str, base_dir: Path | None = None) -> PoolSpec:
    """The pool described by ``text``; raises ConfigError on the first problem found.

    Files it names (a service-account key) are read relative to ``base_dir`` (the pool
    file's folder; default: the working directory)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    r = Reader(text)
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
    providers = parse_providers(
        r, r.table(data.get("providers", {}), "providers"), base_dir or Path.cwd()
    )
    provider_names = {p.name for p in providers}
    domains = _parse_domains(r, data.get("domains", []), provider_names)
    check_provider_limits(r, limits, providers, domains)
    webhooks = _parse_webhooks(r, data.get("webhooks", []))
    return PoolSpec(timezone, limits, warmup, thresholds, seeds, providers, domains, webhooks)


def _parse_webhooks(r: Reader, raw: Any) -> list[WebhookSpec]:
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
        event_types = webhook_section().event_types
        if not isinstance(events, list) or any(e not in event_types for e in events):
            raise r.error(f"{key}.events", f"a list of: {', '.join(event_types)}", None)
        specs.append(WebhookSpec(name, url, secret, list(events)))
    return specs


def _parse_limits(r: Reader, data: dict[str, Any]) -> policy.Limits:
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
    r: Reader, data: dict[str, Any]
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


def _parse_seed(r: Reader, value: Any, key: str) -> str | dict[str, Any]:
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


def _parse_thresholds(r: Reader, data: dict[str, Any]) -> policy.Thresholds:
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


def _parse_domains(r: Reader, raw: Any, providers: set[str]) -> list[DomainSpec]:
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


def _check_imap(r: Reader, body: dict[str, Any], key: str) -> None:
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


def _tracking_host(r: Reader, body: dict[str, Any], key: str, domain: str) -> str:
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


def _parse_mailbox(r: Reader, raw: Any, key: str, providers: set[str]) -> MailboxSpec:
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
