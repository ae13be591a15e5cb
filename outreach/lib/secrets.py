"""Secrets at rest: never stored in plain text.

A stored secret is a *reference*, one of:

- ``env:NAME``: read from the environment variable ``NAME`` (or ``NAME_FILE``) when used;
- ``enc:TOKEN``: encrypted with Fernet under ``OUTREACH_SECRETS_KEY``.

Configuration files write ``{ env = "NAME" }`` for the first and a plain string for the second
(encrypted on apply; refused when no key is configured).
"""

from __future__ import annotations

import os

from cryptography.fernet import Fernet, InvalidToken

from outreach.lib import env


class SecretError(Exception):
    pass


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
    return f"env:{name}"


def encrypt(plain: str) -> str:
    return "enc:" + _fernet().encrypt(plain.encode()).decode()


def resolve(ref: str) -> str:
    """The secret a reference stands for; raises SecretError when it cannot be had."""
    kind, _, rest = ref.partition(":")
    if kind == "env":
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
