"""Secrets at rest: never stored in plain text.

A stored secret is a *reference*, one of:

- ``env:NAME``: read from the environment variable ``NAME`` (or ``NAME_FILE``) when used;
  only names starting with ``OUTREACH_SECRET_`` or listed in ``OUTREACH_SECRET_ENV_ALLOW``;
- ``enc:TOKEN``: encrypted with Fernet under ``OUTREACH_SECRETS_KEY``.

Configuration files write ``{ env = "NAME" }`` for the first and a plain string for the second
(encrypted on apply; refused when no key is configured).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken

from outreach.lib import env


class SecretError(Exception):
    pass


# A stored reference can be edited by whoever edits a provider account (the admin, a pool
# file), and what it resolves to is handed to that account's server on the next send. So an
# ``env:`` reference may name only variables set aside for provider credentials: those with
# this prefix, or those the operator lists in OUTREACH_SECRET_ENV_ALLOW (AWS_ACCESS_KEY_ID...).
SECRET_ENV_PREFIX = "OUTREACH_SECRET_"  # noqa: S105 (a name prefix, not a secret)
ALLOW_LIST_VARIABLE = "OUTREACH_SECRET_ENV_ALLOW"
# outreach's own keys: never a provider's credential, whatever the allow-list says.
OWN_SECRETS = frozenset(
    {
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "OUTREACH_SECRETS_KEY",
        "OUTREACH_UNSUBSCRIBE_KEY",
        "OUTREACH_UNSUBSCRIBE_KEY_FALLBACKS",
        "OUTREACH_WEBHOOK_SECRET",
        "OUTREACH_METRICS_TOKEN",
        "OUTREACH_ADMIN_PASSWORD",
        "DATABASE_URL",
    }
)


def env_name_allowed(name: str, allowed: Iterable[str]) -> bool:
    """Whether an ``env:`` reference may name the variable ``name``."""
    base = name.removesuffix("_FILE")
    if base in OWN_SECRETS or name in OWN_SECRETS:
        return False
    return name.startswith(SECRET_ENV_PREFIX) or name in set(allowed)


def _allowed_names() -> list[str]:
    return env.get_list("OUTREACH_SECRET_ENV_ALLOW", [])


def _fernet() -> Fernet:
    key = env.get_str("OUTREACH_SECRETS_KEY")
    if not key:
        raise SecretError(
            "OUTREACH_SECRETS_KEY is not set: plain-text secrets cannot be stored; "
            'use { env = "NAME" } or set a key (outreach generate-secrets-key)'
        )
    try:
        return Fernet(key.encode())
    except ValueError as exc:
        raise SecretError(f"OUTREACH_SECRETS_KEY is not a valid Fernet key: {exc}") from exc


def env_ref(name: str) -> str:
    if not name or not name.replace("_", "").isalnum():
        raise SecretError(f"not an environment variable name: {name!r}")
    _check_env_name(name)
    return f"env:{name}"


def _check_env_name(name: str) -> None:
    if not env_name_allowed(name, _allowed_names()):
        raise SecretError(
            f"environment variable {name} may not hold a provider secret: name it "
            f"{SECRET_ENV_PREFIX}... or list it in {ALLOW_LIST_VARIABLE}"
        )


def encrypt(plain: str) -> str:
    return "enc:" + _fernet().encrypt(plain.encode()).decode()


def resolve(ref: str) -> str:
    """The secret a reference stands for; raises SecretError when it cannot be had."""
    kind, _, rest = ref.partition(":")
    if kind == "env":
        _check_env_name(rest)
        value = env.get_str(rest, None, os.environ)
        if value is None:
            raise SecretError(f"environment variable {rest} is not set")
        return value
    if kind == "enc":
        try:
            return _fernet().decrypt(rest.encode()).decode()
        except InvalidToken:
            raise SecretError("stored secret does not decrypt with OUTREACH_SECRETS_KEY") from None
    raise SecretError(f"not a secret reference: {kind!r}")


def generate_key() -> str:
    return Fernet.generate_key().decode()
