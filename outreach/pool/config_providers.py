"""The ``[providers]`` tables of ``pool.toml``: each kind's options, checked before any send.

This module owns what a provider account may be configured with: the options each kind takes
(plain settings and secrets), the SMTP options refused here rather than at the first send, a
Google service account's key file (read, checked for the fields its OAuth2 token request
needs, and carried as a secret to store encrypted), and the check that no mailbox is asked to
send past its provider's own limits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from outreach.pool import policy
from outreach.pool.config_spec import (
    DomainSpec,
    ProviderSpec,
    Reader,
)
from outreach.providers.base import SendingLimits, provider_class
from outreach.providers.oauth2 import parse_service_account
from outreach.providers.smtp.sender import SECURITY_CHOICES

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


def check_provider_limits(
    r: Reader,
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


def parse_providers(r: Reader, data: dict[str, Any], base_dir: Path) -> list[ProviderSpec]:
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


def _read_key_file(r: Reader, body: dict[str, Any], key: str, base_dir: Path) -> dict[str, str]:
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


def _check_smtp(r: Reader, body: dict[str, Any], key: str) -> None:
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
