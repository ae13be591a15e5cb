"""Authentication checks of one sending domain: MX, SPF, DKIM, DMARC, MAIL FROM, tracking host.

Each rule is a function ``(spec, resolver) -> list[Finding]`` over a plain :class:`DomainSpec`
(what the domain needs, built from the database by :mod:`outreach.pool.dns.spec`), so the rules
run against any resolver and need no database.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from outreach.pool.dns.findings import Finding, fail, ok, unknown
from outreach.pool.dns.resolver import CouldNotCheck, Resolver

# RFC 7208 §4.6.4: at most 10 mechanisms or modifiers that cause DNS lookups; more is a
# permerror, and receivers then treat the message as having no SPF at all.
SPF_LOOKUP_LIMIT = 10


@dataclass(frozen=True)
class DomainSpec:
    """What a sending domain needs in DNS, as plain values."""

    name: str
    # SPF includes the domain's providers need, e.g. ["amazonses.com"].
    spf_includes: list[str] = field(default_factory=list)
    # SES Easy DKIM tokens: CNAME <token>._domainkey.<domain> → <token>.dkim.amazonses.com.
    ses_dkim_tokens: list[str] = field(default_factory=list)
    # Selectors whose TXT key the mailbox provider (or our own DKIM signer) publishes.
    dkim_selectors: list[str] = field(default_factory=list)
    # Custom MAIL FROM host and the SPF include / MX it needs ("" when not configured).
    mail_from: str = ""
    mail_from_include: str = ""
    mail_from_mx: str = ""
    # Host of the unsubscribe/tracking links ("" when the base URL is an IP literal).
    tracking_host: str = ""
    # The domain's own open/click tracking host and the CNAME target it needs (the host of
    # the outreach server); "" when no campaign tracks opens or clicks.
    link_host: str = ""
    link_target: str = ""


def check_domain(spec: DomainSpec, resolver: Resolver) -> list[Finding]:
    """Every authentication rule for ``spec``; a rule whose lookups fail yields "unknown"."""
    findings: list[Finding] = []
    rules: list[tuple[str, Callable[[DomainSpec, Resolver], list[Finding]]]] = [
        ("mx", check_mx),
        ("spf", check_spf),
        ("dkim", check_dkim),
        ("dmarc", check_dmarc),
        ("mail_from", check_mail_from),
        ("tracking_host", check_tracking_host),
        ("link_host", check_link_host),
    ]
    untrusted = resolver.untrusted()
    if untrusted:
        # Nothing this resolver calls missing can be believed: every rule that would run
        # could not be checked (which never blocks sending on its own).
        skipped = {"mail_from": not spec.mail_from, "tracking_host": not spec.tracking_host}
        return [unknown(name, untrusted) for name, _ in rules if not skipped.get(name)]
    for name, rule in rules:
        try:
            findings.extend(rule(spec, resolver))
        except CouldNotCheck as exc:
            findings.append(unknown(name, str(exc)))
    return findings


# -- MX -------------------------------------------------------------------------------------


def check_mx(spec: DomainSpec, resolver: Resolver) -> list[Finding]:
    # Replies and bounce reports come back through MX; many receivers also reject mail from
    # a domain that cannot receive any.
    records = resolver.query(spec.name, "MX").records
    hosts = [r.split()[-1].rstrip(".") for r in records]
    if not hosts or hosts == [""]:
        return [
            fail(
                "mx",
                "critical",
                f"{spec.name} has no MX record: replies and bounces cannot come back",
                f"add MX at {spec.name} pointing to your mailbox provider's mail servers",
            )
        ]
    return [ok("mx", f"MX: {', '.join(sorted(hosts))}")]


# -- SPF ------------------------------------------------------------------------------------


def spf_records(records: list[str]) -> list[str]:
    return [r for r in records if r.lower().split(" ", 1)[0] == "v=spf1"]


@dataclass
class SpfWalk:
    """Result of following an SPF record through its includes and redirect."""

    lookups: int = 0
    includes: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def _lookup_term(term: str) -> tuple[bool, str]:
    """(does ``term`` cost a DNS lookup, the domain it includes or redirects to)."""
    if term.startswith("include:"):
        return True, term.removeprefix("include:")
    if term.startswith("redirect="):
        return True, term.removeprefix("redirect=")
    mechanism = re.split(r"[:/]", term, maxsplit=1)[0]
    return mechanism in ("a", "mx", "ptr", "exists"), ""


def walk_spf(name: str, record: str, resolver: Resolver, walk: SpfWalk, depth: int = 0) -> None:
    """Count DNS-querying terms of ``record`` (recursively) and collect every include.

    Stops descending once the limit is passed: the verdict is already "too many" and a
    circular include must not loop.
    """
    for term in record.split()[1:]:
        costs, target = _lookup_term(term.lstrip("+-~?").lower())
        if not costs:
            continue
        walk.lookups += 1
        if target:
            walk.includes.add(target)
            if walk.lookups > SPF_LOOKUP_LIMIT or depth >= 10:
                continue
            found = spf_records(resolver.query(target, "TXT").records)
            if len(found) != 1:
                walk.errors.append(f"{target} (included from {name}) has {len(found)} SPF records")
                continue
            walk_spf(target, found[0], resolver, walk, depth + 1)


def check_spf(spec: DomainSpec, resolver: Resolver) -> list[Finding]:
    found = spf_records(resolver.query(spec.name, "TXT").records)
    not_one = _spf_count_finding(spec, found)
    if not_one is not None:
        return [not_one]
    record = found[0]
    walk = SpfWalk()
    walk_spf(spec.name, record, resolver, walk)
    findings = _spf_walk_findings(spec, record, walk)
    ending = _spf_all_finding(spec, record)
    if ending is not None:
        findings.append(ending)
    if not findings:
        findings.append(ok("spf", f"SPF: {record} ({walk.lookups} lookups)", lookups=walk.lookups))
    return findings


def _spf_count_finding(spec: DomainSpec, found: list[str]) -> Finding | None:
    """The failure when the domain has no SPF record or several; None when it has one."""
    if not found:
        includes = " ".join(f"include:{i}" for i in spec.spf_includes)
        wanted = f"v=spf1 {includes} ~all".replace("  ", " ")
        return fail(
            "spf",
            "critical",
            f"{spec.name} has no SPF record",
            f'add TXT "{wanted}" at {spec.name}',
        )
    if len(found) > 1:
        # RFC 7208 §4.5: more than one v=spf1 record is a permerror, i.e. no SPF at all.
        return fail(
            "spf",
            "critical",
            f"{spec.name} has {len(found)} SPF records (receivers treat that as none)",
            f"merge them into one TXT record at {spec.name}",
            records=found,
        )
    return None


def _spf_walk_findings(spec: DomainSpec, record: str, walk: SpfWalk) -> list[Finding]:
    """What the walk of the record's includes found: too many lookups, broken or missing
    includes."""
    findings: list[Finding] = []
    if walk.lookups > SPF_LOOKUP_LIMIT:
        findings.append(
            fail(
                "spf",
                "critical",
                f"SPF of {spec.name} needs {walk.lookups} DNS lookups (limit {SPF_LOOKUP_LIMIT})",
                f"remove includes you no longer send through from the TXT at {spec.name}",
                subject="lookups",
                lookups=walk.lookups,
            )
        )
    for error in walk.errors:
        findings.append(
            fail(
                "spf",
                "critical",
                f"SPF include broken: {error}",
                "fix or remove that include",
                subject="include",
            )
        )
    missing = [i for i in spec.spf_includes if i.lower() not in walk.includes]
    if missing:
        add = " ".join(f"include:{i}" for i in missing)
        findings.append(
            fail(
                "spf",
                "critical",
                f"SPF of {spec.name} does not include {', '.join(missing)}",
                f'add "{add}" to the TXT "{record}" at {spec.name}',
                subject="includes",
            )
        )
    return findings


def _spf_all_finding(spec: DomainSpec, record: str) -> Finding | None:
    """The failure of the record's final ``all``: +all lets anyone send, none is too lax."""
    qualifier = next(
        (t[0] if t[0] in "+-~?" else "+" for t in record.split() if t.lstrip("+-~?") == "all"),
        None,
    )
    if qualifier == "+":
        return fail(
            "spf",
            "critical",
            f"SPF of {spec.name} ends in +all: anyone may send as this domain",
            f'replace "+all" by "~all" in the TXT at {spec.name}',
            subject="all",
        )
    if qualifier is None and "redirect=" not in record:
        return fail(
            "spf",
            "warning",
            f"SPF of {spec.name} has no final ~all/-all",
            f'end the TXT at {spec.name} with "~all"',
            subject="all",
        )
    return None


# -- DKIM -----------------------------------------------------------------------------------


def _dkim_key_finding(host: str, records: list[str], subject: str) -> Finding | None:
    keys = [r for r in records if "p=" in r.replace(" ", "")]
    if not keys:
        return None
    tags = _tags(keys[0])
    if not tags.get("p"):
        return fail(
            "dkim",
            "critical",
            f"DKIM key at {host} is revoked (empty p=)",
            f"publish the current public key at {host}",
            subject=subject,
        )
    return ok("dkim", f"DKIM key published at {host}", subject=subject)


def check_dkim(spec: DomainSpec, resolver: Resolver) -> list[Finding]:
    findings = [_ses_dkim_finding(spec, token, resolver) for token in spec.ses_dkim_tokens]
    for selector in spec.dkim_selectors:
        host = f"{selector}._domainkey.{spec.name}"
        answer = resolver.query(host, "TXT")
        key = _dkim_key_finding(host, answer.records, selector)
        findings.append(
            key
            or fail(
                "dkim",
                "critical",
                f"no DKIM key at {host}",
                f'add TXT "v=DKIM1; k=rsa; p=<public key>" at {host}',
                subject=selector,
            )
        )
    if not spec.ses_dkim_tokens and not spec.dkim_selectors:
        findings.append(
            fail(
                "dkim",
                "critical",
                f"no DKIM configured for {spec.name}: unsigned mail fails DMARC alignment",
                f"run `outreach ses setup {spec.name}` or set dkim_selector for the domain",
            )
        )
    return findings


def _ses_dkim_finding(spec: DomainSpec, token: str, resolver: Resolver) -> Finding:
    """One SES DKIM token: its CNAME to Amazon's host, and the key that CNAME leads to."""
    host = f"{token}._domainkey.{spec.name}"
    target = f"{token}.dkim.amazonses.com"
    cname = resolver.cname(host)
    if cname is None:
        return fail(
            "dkim",
            "critical",
            f"SES DKIM CNAME missing at {host}",
            f"add CNAME {host} → {target}",
            subject=token,
        )
    if cname.lower() != target:
        return fail(
            "dkim",
            "critical",
            f"SES DKIM CNAME at {host} points to {cname}, not {target}",
            f"change CNAME {host} to {target}",
            subject=token,
        )
    key = _dkim_key_finding(host, resolver.query(host, "TXT").records, token)
    return key or fail(
        "dkim",
        "critical",
        f"DKIM CNAME {host} → {cname} resolves to no key",
        f"check the SES identity's DKIM tokens (outreach ses setup {spec.name})",
        subject=token,
    )


# -- DMARC ----------------------------------------------------------------------------------


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip()
    return tags


def check_dmarc(spec: DomainSpec, resolver: Resolver) -> list[Finding]:
    host = f"_dmarc.{spec.name}"
    found = [
        r
        for r in resolver.query(host, "TXT").records
        if r.replace(" ", "").lower().startswith("v=dmarc1")
    ]
    wanted = f'"v=DMARC1; p=none; rua=mailto:dmarc@{spec.name}"'
    if not found:
        # Gmail and Yahoo require DMARC from bulk senders since 2024.
        return [
            fail("dmarc", "critical", f"no DMARC record at {host}", f"add TXT {wanted} at {host}")
        ]
    if len(found) > 1:
        return [
            fail(
                "dmarc",
                "critical",
                f"{len(found)} DMARC records at {host} (receivers ignore them all)",
                f"keep one TXT at {host}",
            )
        ]
    tags = _tags(found[0])
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return [
            fail(
                "dmarc",
                "critical",
                f"DMARC at {host} has no valid policy (p={policy or 'missing'})",
                f"set p=none (at least) in the TXT at {host}",
            )
        ]
    alignment = f"adkim={tags.get('adkim', 'r')}, aspf={tags.get('aspf', 'r')}"
    findings = [ok("dmarc", f"DMARC p={policy}, {alignment}", policy=policy)]
    if not tags.get("rua"):
        findings.append(
            fail(
                "dmarc",
                "warning",
                f"DMARC at {host} has no reporting address: failures go unseen",
                f"add rua=mailto:dmarc@{spec.name} to the TXT at {host}",
                subject="rua",
            )
        )
    if spec.mail_from and tags.get("aspf", "r").lower() == "s" and not spec.ses_dkim_tokens:
        findings.append(
            fail(
                "dmarc",
                "warning",
                f"aspf=s: SPF of the MAIL FROM host {spec.mail_from} never aligns",
                f"use aspf=r in the TXT at {host}, or sign with DKIM",
                subject="alignment",
            )
        )
    return findings


# -- MAIL FROM ------------------------------------------------------------------------------


def check_mail_from(spec: DomainSpec, resolver: Resolver) -> list[Finding]:
    if not spec.mail_from:
        return []
    findings: list[Finding] = []
    mx = resolver.query(spec.mail_from, "MX").records
    hosts = [r.split()[-1].rstrip(".").lower() for r in mx]
    if spec.mail_from_mx and spec.mail_from_mx not in hosts:
        findings.append(
            fail(
                "mail_from",
                "warning",
                f"MAIL FROM host {spec.mail_from} has no MX {spec.mail_from_mx}: the provider "
                "falls back to its own domain and SPF no longer aligns",
                f"add MX 10 {spec.mail_from_mx} at {spec.mail_from}",
                subject="mx",
            )
        )
    elif not hosts:
        findings.append(
            fail(
                "mail_from",
                "warning",
                f"MAIL FROM host {spec.mail_from} has no MX",
                f"add the provider's bounce MX at {spec.mail_from}",
                subject="mx",
            )
        )
    spf = spf_records(resolver.query(spec.mail_from, "TXT").records)
    include = spec.mail_from_include
    if len(spf) != 1 or (include and f"include:{include}" not in spf[0].lower()):
        wanted = f'"v=spf1 include:{include} ~all"' if include else "an SPF record"
        findings.append(
            fail(
                "mail_from",
                "warning",
                f"MAIL FROM host {spec.mail_from} has {len(spf)} SPF records"
                + (f" including {include}" if include and spf else ""),
                f"add TXT {wanted} at {spec.mail_from}",
                subject="spf",
            )
        )
    return findings or [ok("mail_from", f"MAIL FROM {spec.mail_from}: MX and SPF in place")]


# -- tracking / unsubscribe host -------------------------------------------------------------


def check_tracking_host(spec: DomainSpec, resolver: Resolver) -> list[Finding]:
    host = spec.tracking_host
    if not host:
        return []
    try:
        ipaddress.ip_address(host)
        return [
            fail(
                "tracking_host",
                "warning",
                f"unsubscribe links point at an IP address ({host})",
                "set OUTREACH_BASE_URL to an https:// URL on a host name",
            )
        ]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return [
            fail(
                "tracking_host",
                "warning",
                f"unsubscribe links point at {host}, unreachable for recipients",
                "set OUTREACH_BASE_URL to the public https:// URL of this installation",
            )
        ]
    addresses = resolver.query(host, "A").records or resolver.query(host, "AAAA").records
    if not addresses:
        # An unsubscribe link that does not resolve breaks RFC 8058 one-click unsubscribe.
        return [
            fail(
                "tracking_host",
                "critical",
                f"unsubscribe/tracking host {host} does not resolve",
                f"add an A (or CNAME) record for {host}",
            )
        ]
    return [ok("tracking_host", f"{host} resolves to {', '.join(addresses)}")]


# -- the domain's own open/click tracking host ------------------------------------------------


def check_link_host(spec: DomainSpec, resolver: Resolver) -> list[Finding]:
    """The domain's tracking host (``t.<domain>``) must be a CNAME to the outreach server:
    every pixel and tracked link of the domain's mail goes there, so a missing or wrong record
    breaks links in mail already sent."""
    host, target = spec.link_host, spec.link_target
    if not host or not target:
        return []
    fix = f"add CNAME {host} → {target}"
    cname = resolver.cname(host)
    if cname is not None and cname.rstrip(".").lower() == target.lower():
        return [ok("link_host", f"{host} is a CNAME to {target}")]
    if cname is not None:
        return [
            fail(
                "link_host",
                "critical",
                f"tracking host {host} is a CNAME to {cname}, not to {target}",
                f"make {host} a CNAME to {target}",
            )
        ]
    addresses = resolver.query(host, "A").records
    if addresses and sorted(addresses) == sorted(resolver.query(target, "A").records):
        return [ok("link_host", f"{host} resolves to the addresses of {target}")]
    if addresses:
        return [
            fail(
                "link_host",
                "critical",
                f"tracking host {host} resolves to {', '.join(addresses)}, not to {target}",
                fix,
            )
        ]
    return [
        fail(
            "link_host",
            "critical",
            f"tracking host {host} does not resolve: tracked links and pixels break",
            fix,
        )
    ]
