"""Create or fix a domain's authentication records in its Cloudflare zone.

1. :func:`plan_changes` compares what the domain needs (a :class:`DomainSpec`) with the
   records the zone has now, and names each change: create a record, or update one record
   (by its id) whose content is wrong. What cannot be fixed safely (two SPF records, a
   missing MX, a DKIM key only the mailbox provider knows) is a ``manual`` item, never an
   API call.
2. :func:`apply_changes` carries out exactly the creates and updates of a plan, nothing
   else: no record the plan does not name is touched and nothing is ever deleted. Records it
   creates carry :data:`COMMENT`.
3. Run twice, the second plan is empty: apply is idempotent.

The API token comes from ``CLOUDFLARE_API_TOKEN`` (or ``CLOUDFLARE_API_TOKEN_FILE``); the
SDK reads ``CLOUDFLARE_BASE_URL`` when set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from cloudflare import Cloudflare

from outreach.lib import env
from outreach.pool.dns.checks import DomainSpec, spf_records

COMMENT = "managed by outreach"
AUTO_TTL = 1  # Cloudflare's "automatic" TTL


class CloudflareError(Exception):
    pass


@dataclass(frozen=True)
class Record:
    """A record of the zone as Cloudflare lists it (TXT content unquoted)."""

    id: str
    type: str
    name: str
    content: str
    priority: int | None = None
    ttl: int = AUTO_TTL
    comment: str = ""


@dataclass(frozen=True)
class Change:
    action: Literal["create", "update", "manual"]
    type: str
    name: str
    content: str = ""
    reason: str = ""
    priority: int | None = None
    record_id: str = ""
    current: str = ""

    def describe(self) -> str:
        value = f"{self.priority} {self.content}" if self.priority is not None else self.content
        if self.action == "create":
            return f"create {self.type} {self.name} {value!r} ({self.reason})"
        if self.action == "update":
            return (
                f"update {self.type} {self.name} [{self.record_id}] "
                f"{self.current!r} → {value!r} ({self.reason})"
            )
        return f"manual: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unquote_txt(content: str) -> str:
    """``"a" "b"`` (how DNS and newer API responses show TXT) → ``ab``; plain text as is."""
    text = content.strip()
    if not (text.startswith('"') and text.endswith('"')):
        return text
    parts, current, inside, escaped = [], "", False, False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            if inside:
                parts.append(current)
                current = ""
            inside = not inside
        elif inside:
            current += char
    return "".join(parts)


def merge_spf(record: str, includes: Iterable[str]) -> str:
    """``record`` with ``include:`` terms added before its ``all`` (or redirect)."""
    terms = record.split()
    extra = [f"include:{i}" for i in includes]
    for index, term in enumerate(terms):
        bare = term.lstrip("+-~?").lower()
        if bare == "all" or bare.startswith("redirect="):
            return " ".join(terms[:index] + extra + terms[index:])
    return " ".join([*terms, *extra, "~all"])


def plan_changes(spec: DomainSpec, records: list[Record]) -> list[Change]:
    """The changes that bring the zone's records in line with ``spec`` (see module doc)."""
    changes: list[Change] = []

    def at(name: str, rtype: str) -> list[Record]:
        return [r for r in records if r.name.lower() == name.lower() and r.type == rtype]

    # MX of the domain itself: where replies go is the operator's choice.
    if not at(spec.name, "MX"):
        changes.append(
            Change(
                "manual", "MX", spec.name, reason=f"add your mailbox provider's MX at {spec.name}"
            )
        )
    changes += _spf_changes(spec.name, spec.spf_includes, at(spec.name, "TXT"))
    for token in spec.ses_dkim_tokens:
        changes += _cname_change(
            f"{token}._domainkey.{spec.name}", f"{token}.dkim.amazonses.com", records, at
        )
    for selector in spec.dkim_selectors:
        host = f"{selector}._domainkey.{spec.name}"
        if not any("p=" in r.content for r in at(host, "TXT")):
            changes.append(
                Change("manual", "TXT", host, reason=f"publish the DKIM key of selector {selector}")
            )
    dmarc = f"_dmarc.{spec.name}"
    if not [
        r for r in at(dmarc, "TXT") if r.content.replace(" ", "").lower().startswith("v=dmarc1")
    ]:
        changes.append(
            Change(
                "create",
                "TXT",
                dmarc,
                f"v=DMARC1; p=none; rua=mailto:dmarc@{spec.name}",
                reason="DMARC missing",
            )
        )
    if spec.mail_from and spec.mail_from_mx:
        changes += _mx_change(spec.mail_from, spec.mail_from_mx, at(spec.mail_from, "MX"))
    if spec.mail_from and spec.mail_from_include:
        changes += _spf_changes(spec.mail_from, [spec.mail_from_include], at(spec.mail_from, "TXT"))
    if spec.link_host and spec.link_target:
        changes += _cname_change(
            spec.link_host, spec.link_target.lower(), records, at, what="tracking CNAME"
        )
    return changes


def _spf_changes(name: str, includes: list[str], txt: list[Record]) -> list[Change]:
    spf = [r for r in txt if spf_records([r.content])]
    if len(spf) > 1:
        return [
            Change(
                "manual",
                "TXT",
                name,
                reason=f"{name} has {len(spf)} SPF records: merge them into one by hand",
            )
        ]
    if not spf:
        if not includes:
            return []
        content = merge_spf("v=spf1 ~all", includes)
        return [Change("create", "TXT", name, content, reason="SPF missing")]
    record = spf[0]
    missing = [i for i in includes if f"include:{i}".lower() not in record.content.lower().split()]
    if not missing:
        return []
    return [
        Change(
            "update",
            "TXT",
            name,
            merge_spf(record.content, missing),
            reason=f"SPF lacks {', '.join(missing)}",
            record_id=record.id,
            current=record.content,
        )
    ]


def _cname_change(
    name: str, target: str, records: list[Record], at: Any, what: str = "DKIM CNAME"
) -> list[Change]:
    cnames = at(name, "CNAME")
    if any(r.content.rstrip(".").lower() == target for r in cnames):
        return []
    if len(cnames) == 1:
        return [
            Change(
                "update",
                "CNAME",
                name,
                target,
                reason=f"{what} points elsewhere",
                record_id=cnames[0].id,
                current=cnames[0].content,
            )
        ]
    if any(r.name.lower() == name.lower() for r in records):
        return [
            Change(
                "manual",
                "CNAME",
                name,
                target,
                reason=f"{name} has other records: make it CNAME {target}",
            )
        ]
    return [Change("create", "CNAME", name, target, reason=f"{what} missing")]


def _mx_change(name: str, host: str, mx: list[Record]) -> list[Change]:
    if any(r.content.rstrip(".").lower() == host for r in mx):
        return []
    if len(mx) == 1:
        return [
            Change(
                "update",
                "MX",
                name,
                host,
                priority=10,
                reason="MAIL FROM MX points elsewhere",
                record_id=mx[0].id,
                current=mx[0].content,
            )
        ]
    if mx:
        return [
            Change(
                "manual",
                "MX",
                name,
                host,
                priority=10,
                reason=f"{name} has {len(mx)} MX records: keep only 10 {host}",
            )
        ]
    return [Change("create", "MX", name, host, priority=10, reason="MAIL FROM MX missing")]


class Zone:
    """One Cloudflare zone, through the official SDK."""

    def __init__(self, client: Cloudflare, zone_id: str, name: str) -> None:
        self.client = client
        self.id = zone_id
        self.name = name

    @classmethod
    def find(cls, client: Cloudflare, domain: str) -> Zone:
        for zone in client.zones.list(name=domain):
            if zone.name.lower() == domain.lower():
                return cls(client, zone.id, zone.name)
        raise CloudflareError(f"{domain}: no such zone on this Cloudflare account")

    def records(self) -> list[Record]:
        found = []
        for item in self.client.dns.records.list(zone_id=self.id, per_page=100):
            content = str(getattr(item, "content", "") or "")
            rtype = str(item.type)
            found.append(
                Record(
                    id=str(item.id),
                    type=rtype,
                    name=str(item.name),
                    content=unquote_txt(content) if rtype == "TXT" else content,
                    priority=getattr(item, "priority", None),
                    ttl=int(getattr(item, "ttl", AUTO_TTL) or AUTO_TTL),
                    comment=str(getattr(item, "comment", "") or ""),
                )
            )
        return found

    def apply(self, change: Change, records: list[Record]) -> None:
        extra: dict[str, Any] = {}
        if change.priority is not None:
            extra["priority"] = change.priority
        if change.type == "CNAME":
            extra["proxied"] = False  # a proxied DKIM CNAME answers with Cloudflare's IPs
        if change.action == "create":
            self.client.dns.records.create(  # type: ignore[call-overload]
                zone_id=self.id,
                type=change.type,
                name=change.name,
                content=change.content,
                ttl=AUTO_TTL,
                comment=COMMENT,
                **extra,
            )
        elif change.action == "update":
            current = next(r for r in records if r.id == change.record_id)
            # PATCH: only the content changes; the record keeps its comment, TTL and tags.
            self.client.dns.records.edit(  # type: ignore[call-overload]
                change.record_id,
                zone_id=self.id,
                type=change.type,
                name=current.name,
                content=change.content,
                ttl=current.ttl,
                **extra,
            )


def client_from_env() -> Cloudflare:
    token = env.get_str("CLOUDFLARE_API_TOKEN")
    if not token:
        raise CloudflareError("CLOUDFLARE_API_TOKEN (or CLOUDFLARE_API_TOKEN_FILE) is not set")
    return Cloudflare(api_token=token)


def plan(zone: Zone, spec: DomainSpec) -> tuple[list[Change], list[Record]]:
    records = zone.records()
    return plan_changes(spec, records), records


def apply_changes(zone: Zone, changes: list[Change], records: list[Record]) -> list[Change]:
    """Carry out the creates and updates of ``changes``; returns those carried out."""
    done = []
    for change in changes:
        if change.action in ("create", "update"):
            zone.apply(change, records)
            done.append(change)
    return done
