"""Lead addresses: the canonical form of an address and the checks on it.

This module owns what makes an address importable: its normal form (lower case, IDNA domain,
RFC 5321 length), the documentation domains nobody receives mail at, role accounts,
disposable domains, and the optional MX lookup per domain. It knows nothing of CSV files or
of the database; the row checks and the ``campaign`` command call it.
"""

from __future__ import annotations

import re
from functools import lru_cache

import email_validator
from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS

# Shared inboxes, not a person: cold mail to them is both useless and a complaint magnet.
ROLE_LOCAL_PARTS = frozenset(
    """abuse accounts accounting admin administrator all billing careers contact
    customerservice customer.service enquiries enquiry everyone feedback finance hello help
    helpdesk hostmaster hr info inquiries jobs legal mail marketing media newsletter noreply
    no-reply no_reply office orders postmaster pr press privacy recruiting root sales security
    service staff support team webmaster""".split()
)

# Reserved for documentation (RFC 2606): nobody receives mail there, so a lead on one is a
# placeholder left in the file, never a person.
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
# RFC 5321 4.5.3.1.1: servers need not accept a longer local part.
MAX_LOCAL_PART = 64


class InvalidAddress(ValueError):
    pass


# An unquoted ASCII local part (RFC 5322 dot-atom): email-validator accepts every such one
# up to 64 characters, so only its domain needs the full check, cached per domain.
_DOT_ATOM = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


def normalize_email(raw: str) -> str:
    """The canonical form of an address (lower case, IDNA domain); raises InvalidAddress."""
    text = raw.strip().strip("<>").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    if not text:
        raise InvalidAddress("email is empty")
    local, at, domain = text.lower().rpartition("@")
    if len(local) > MAX_LOCAL_PART:
        raise InvalidAddress(
            f"the part before the @ is {len(local)} characters long; "
            f"at most {MAX_LOCAL_PART} are allowed (RFC 5321)"
        )
    if at and len(text) <= 254 and _DOT_ATOM.match(local):
        try:
            address = f"{local}@{_normalize_domain(domain)}"
        except InvalidAddress:
            address = ""  # the full check below words the message for the whole address
        if address and len(address) <= 254:
            return address
    return _validate(text)


@lru_cache(maxsize=20_000)
def _normalize_domain(domain: str) -> str:
    return _validate(f"postmaster@{domain}").rpartition("@")[2]


def _validate(text: str) -> str:
    try:
        # SMTPUTF8 (non-ASCII local parts) is not supported by SES and most providers.
        info = email_validator.validate_email(
            text, check_deliverability=False, allow_smtputf8=False
        )
    except email_validator.EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from None
    return (info.ascii_email or info.normalized).lower()


def reserved_domain(domain: str) -> str | None:
    """The reserved documentation domain ``domain`` is or is under, or None."""
    return next((r for r in RESERVED_DOMAINS if domain == r or domain.endswith("." + r)), None)


def is_role_account(email: str) -> bool:
    local = email.partition("@")[0].partition("+")[0]
    return local in ROLE_LOCAL_PARTS


def is_disposable(domain: str) -> bool:
    return domain in DISPOSABLE_DOMAINS


class MxChecker:
    """Whether a domain can receive mail (MX, else A/AAAA), one DNS lookup per domain.

    Answers are cached for the checker's life (one import): a file of 100,000 leads at a few
    thousand companies makes a few thousand lookups. A timeout or a server failure is not held
    against the address: only a definite answer (no such domain, no MX/A, null MX) rejects it.
    Nameservers and timeout come from ``OUTREACH_DNS_NAMESERVERS``/``OUTREACH_DNS_TIMEOUT``.
    """

    MAX_CACHED = 50_000

    def __init__(self, timeout: float | None = None) -> None:
        import dns.nameserver
        import dns.resolver
        from django.conf import settings

        from outreach.pool.dns.resolver import parse_nameservers

        servers = parse_nameservers(getattr(settings, "OUTREACH_DNS_NAMESERVERS", []))
        if servers:
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port) for address, port in servers
            ]
        else:
            self.resolver = dns.resolver.Resolver()
        self.timeout = timeout or float(getattr(settings, "OUTREACH_DNS_TIMEOUT", 5))
        self.resolver.lifetime = self.timeout
        self.resolver.timeout = self.timeout
        self.cache: dict[str, str | None] = {}
        self.lookups = 0

    def problem(self, domain: str) -> str | None:
        if domain in self.cache:
            return self.cache[domain]
        self.lookups += 1
        try:
            email_validator.validate_email(
                f"postmaster@{domain}",
                check_deliverability=True,
                dns_resolver=self.resolver,  # carries the timeout
            )
            problem = None
        except email_validator.EmailNotValidError as exc:
            problem = str(exc)
        if len(self.cache) >= self.MAX_CACHED:
            self.cache.clear()
        self.cache[domain] = problem
        return problem
