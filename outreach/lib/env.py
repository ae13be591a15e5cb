"""Strict parsers for settings read from the environment.

Every getter accepts a ``NAME_FILE`` variant (the value is read from that file, for secrets
mounted by systemd or a container runtime) and raises ``ImproperlyConfigured`` with the
variable's name when the value does not parse, instead of silently falling back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def get_str(
    name: str, default: str | None = None, env: Mapping[str, str] | None = None
) -> str | None:
    """The value of ``name``, or of the file named by ``name_FILE``, or ``default``."""
    env = os.environ if env is None else env
    if name in env:
        return env[name]
    file_name = env.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name}: {exc}") from exc
    return default


def get_bool(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    raw = get_str(name, None, env)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: expected a boolean (true/false), got {raw!r}")


def get_int(
    name: str, default: int, env: Mapping[str, str] | None = None, *, minimum: int = 0
) -> int:
    raw = get_str(name, None, env)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}: must be >= {minimum}, got {value}")
    return value


def get_list(name: str, default: list[str], env: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    raw = get_str(name, None, env)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def get_choice(
    name: str, default: str, choices: tuple[str, ...], env: Mapping[str, str] | None = None
) -> str:
    raw = get_str(name, None, env)
    if raw is None:
        return default
    if raw not in choices:
        raise ImproperlyConfigured(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
    return raw


# What deploy/outreach.env.example writes where a real value must go: a production server
# still carrying one would sign with a published key or answer for someone else's host.
PLACEHOLDERS = ("change-me", "outreach.example.com")
CHECKED_FOR_PLACEHOLDERS = (
    "SECRET_KEY",
    "SECRET_KEY_FALLBACKS",
    "OUTREACH_UNSUBSCRIBE_KEY",
    "OUTREACH_UNSUBSCRIBE_KEY_FALLBACKS",
    "OUTREACH_SECRETS_KEY",
    "OUTREACH_WEBHOOK_SECRET",
    "OUTREACH_METRICS_TOKEN",
    "OUTREACH_ADMIN_PASSWORD",
    "OUTREACH_BASE_URL",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
)


def placeholders(env: Mapping[str, str] | None = None) -> list[str]:
    """The variables (of CHECKED_FOR_PLACEHOLDERS) still holding an example file placeholder."""
    found = []
    for name in CHECKED_FOR_PLACEHOLDERS:
        value = (get_str(name, "", env) or "").lower()
        if any(marker in value for marker in PLACEHOLDERS):
            found.append(name)
    return found
