"""What a DNS check found: one finding per rule, with its severity and a one-line fix.

A finding is ``ok``, ``fail`` or ``unknown`` ("could not check": a timeout, SERVFAIL, a
refused blocklist query). Unknown is never reported as ok: a domain whose checks could not
all run is not "all good", whatever the other findings say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "fail", "unknown"]
Severity = Literal["critical", "warning", "info"]
Outcome = Literal["ok", "warning", "unknown", "critical"]

OK: Status = "ok"
FAIL: Status = "fail"
UNKNOWN: Status = "unknown"


@dataclass(frozen=True)
class Finding:
    # The rule that produced it: mx, spf, dkim, dmarc, mail_from, tracking_host, blocklist,
    # ip_blocklist. Together with ``subject`` it identifies the finding across runs.
    check: str
    status: Status
    severity: Severity
    message: str
    fix: str = ""
    # What exactly was looked at when a rule has several (a DKIM selector, a blocklist zone).
    subject: str = ""
    figures: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.check}:{self.subject}" if self.subject else self.check

    @property
    def failing(self) -> bool:
        return self.status == FAIL

    @property
    def critical(self) -> bool:
        return self.status == FAIL and self.severity == "critical"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not data["figures"]:
            data.pop("figures")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**data)


def ok(check: str, message: str, *, subject: str = "", **figures: Any) -> Finding:
    return Finding(check, OK, "info", message, subject=subject, figures=figures or None)


def fail(
    check: str,
    severity: Severity,
    message: str,
    fix: str,
    *,
    subject: str = "",
    **figures: Any,
) -> Finding:
    return Finding(check, FAIL, severity, message, fix, subject=subject, figures=figures or None)


def unknown(check: str, message: str, *, subject: str = "") -> Finding:
    # Could not check: treated as serious as the rule itself would be, so it is never mistaken
    # for a pass; it does not block sending by itself (see outreach.pool.dns.store).
    return Finding(
        check,
        UNKNOWN,
        "warning",
        f"could not check: {message}",
        "check the resolver (OUTREACH_DNS_NAMESERVERS) and run `outreach dns check` again",
        subject=subject,
    )


def outcome(findings: Iterable[Finding]) -> Outcome:
    """The worst of the findings: critical > unknown > warning > ok.

    "unknown" ranks above "warning" because a check that could not run may hide a critical
    failure; an empty list is "unknown" too (nothing was checked, so nothing is known good).
    """
    items = list(findings)
    if not items:
        return "unknown"
    if any(f.critical for f in items):
        return "critical"
    if any(f.status == UNKNOWN for f in items):
        return "unknown"
    if any(f.status == FAIL and f.severity == "warning" for f in items):
        return "warning"
    return "ok"
