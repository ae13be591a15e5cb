"""Checking the rows of a lead import, and the report the import returns.

This module owns what happens to one row before the database sees it: the cell count, the
address checks of :mod:`outreach.campaigns.addresses`, field lengths, time zones, role and
disposable flags and the MX lookup. It also owns :class:`ImportReport` and
:class:`ImportOptions`, the import's outcome and its switches, since every skip, flag and row
error is counted here.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import IO, Any
from zoneinfo import available_timezones

from outreach.campaigns import lifecycle
from outreach.campaigns.addresses import (
    InvalidAddress,
    MxChecker,
    is_disposable,
    is_role_account,
    normalize_email,
    reserved_domain,
)
from outreach.campaigns.csvsafe import write_rows
from outreach.campaigns.leadfile import MAX_LINE_BYTES, OVERLONG, Header, has_bad_bytes

MAX_CUSTOM_VALUE = 1000
# Row errors kept for the report; the count goes on beyond this.
MAX_ERRORS_KEPT = 10_000
MAX_LENGTHS = {"first_name": 100, "last_name": 100, "company": 200, "title": 200}
_SPACES = re.compile(r"\s+")


@dataclass
class RowError:
    line: int
    email: str
    reason: str


@dataclass
class ImportReport:
    dry_run: bool = False
    rows: int = 0
    imported: int = 0  # new leads
    updated: int = 0  # existing leads whose fields changed
    unchanged: int = 0
    merged_duplicates: int = 0  # rows of an address seen earlier in the file
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows
    flagged: Counter[str] = field(default_factory=Counter)  # imported anyway, by flag
    invalid_timezones: int = 0  # imported without a time zone
    enroll: lifecycle.EnrollReport = field(default_factory=lifecycle.EnrollReport)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0

    def add_error(self, line: int, email: str, reason: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(RowError(line, email, reason))

    def skip(self, reason: str, line: int, email: str, detail: str) -> None:
        self.skipped[reason] += 1
        self.add_error(line, email, detail)

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "rows": self.rows,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "merged_duplicates": self.merged_duplicates,
            "skipped": dict(sorted(self.skipped.items())),
            "flagged": dict(sorted(self.flagged.items())),
            "invalid_timezones": self.invalid_timezones,
            "enrolled": self.enroll.enrolled,
            "already_enrolled": self.enroll.already_enrolled,
            "not_enrolled_suppressed": self.enroll.suppressed,
            "not_enrolled_in_other_campaign": self.enroll.in_other_campaign,
            "errors": self.error_count,
        }

    def write_errors_csv(self, out: IO[str]) -> None:
        """The per-row error report as CSV, safe to open in a spreadsheet."""
        rows: list[list[Any]] = [["line", "email", "reason"]]
        rows.extend([e.line, e.email, e.reason] for e in self.errors)
        write_rows(out, rows)


@dataclass(frozen=True)
class ImportOptions:
    skip_role_accounts: bool = True
    skip_disposable: bool = True
    # DNS lookups per domain; off by default (slow on big files, and needs network).
    check_mx: bool = False
    mx_timeout: float | None = None  # None: OUTREACH_DNS_TIMEOUT


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


@dataclass
class Row:
    line: int
    email: str
    domain: str
    values: dict[str, str]  # Lead fields, non-blank only
    custom: dict[str, str]  # non-blank only


def _clean(value: str) -> str:
    # CR, LF, tabs and runs of spaces become one space: lead data ends up in headers
    # (subject, To display name) where a line break would start a new header.
    return _SPACES.sub(" ", value).strip()


def check_row(
    line: int,
    cells: list[str],
    header: Header,
    options: ImportOptions,
    report: ImportReport,
    mx: MxChecker | None,
) -> Row | None:
    """The row to merge, or None when it is skipped (the reason is counted in ``report``)."""
    raw_email = cells[header.email_index] if header.email_index < len(cells) else ""
    if not _readable(line, cells, header, _clean(raw_email)[:254], report):
        return None
    address = _address(line, raw_email, report)
    if address is None:
        return None
    email, domain = address
    fields = _fields(line, email, cells, header, report)
    if fields is None or not _allowed(line, email, domain, options, report, mx):
        return None
    values, custom = fields
    return Row(line, email, domain, values, custom)


def _readable(
    line: int, cells: list[str], header: Header, shown: str, report: ImportReport
) -> bool:
    """Whether the row can be read at all: bounded, decodable, as many cells as the header."""
    if any(OVERLONG in cell for cell in cells):
        report.skip("bad_row", line, "", f"line longer than {MAX_LINE_BYTES} bytes")
        return False
    if any(has_bad_bytes(cell) for cell in cells):
        shown = shown.encode("utf-8", "replace").decode("utf-8", "replace")
        report.skip("bad_row", line, shown, "not valid UTF-8: save the file as CSV UTF-8")
        return False
    if len(cells) != len(header.keys):
        report.skip(
            "bad_row",
            line,
            shown,
            f"{len(cells)} fields where the header has {len(header.keys)} (wrong delimiter or "
            "unquoted separator?)",
        )
        return False
    return True


def _address(line: int, raw_email: str, report: ImportReport) -> tuple[str, str] | None:
    """The row's normalized address and its domain, or None when nobody can receive it."""
    try:
        email = normalize_email(raw_email)
    except InvalidAddress as exc:
        report.skip("invalid_email", line, _clean(raw_email)[:254], str(exc))
        return None
    domain = email.rpartition("@")[2]
    reserved = reserved_domain(domain)
    if reserved:
        detail = f"{reserved} is reserved for examples (RFC 2606): it receives no mail"
        report.skip("invalid_email", line, email, detail)
        return None
    return email, domain


def _fields(
    line: int, email: str, cells: list[str], header: Header, report: ImportReport
) -> tuple[dict[str, str], dict[str, str]] | None:
    """The row's non-blank Lead fields and custom values, or None when one is too long.

    An unknown time zone is reported and left out; the row is still imported.
    """
    values: dict[str, str] = {}
    custom: dict[str, str] = {}
    for key, cell in zip(header.keys, cells, strict=True):
        if key == "email":
            continue
        value = _clean(cell)
        if not value:
            continue
        if key in MAX_LENGTHS:
            if len(value) > MAX_LENGTHS[key]:
                report.skip(
                    "bad_row", line, email, f"{key} is longer than {MAX_LENGTHS[key]} characters"
                )
                return None
            values[key] = value
        elif key == "timezone":
            if value in _timezones():
                values[key] = value
            else:
                report.invalid_timezones += 1
                report.add_error(
                    line, email, f"unknown time zone {value!r}: imported without a time zone"
                )
        else:
            if len(value) > MAX_CUSTOM_VALUE:
                report.skip(
                    "bad_row", line, email, f"{key} is longer than {MAX_CUSTOM_VALUE} characters"
                )
                return None
            custom[key] = value
    return values, custom


def _allowed(
    line: int,
    email: str,
    domain: str,
    options: ImportOptions,
    report: ImportReport,
    mx: MxChecker | None,
) -> bool:
    """Whether the address passes the role, disposable and MX checks the options ask for."""
    for flag, applies, skip in (
        ("role_account", is_role_account(email), options.skip_role_accounts),
        ("disposable_domain", is_disposable(domain), options.skip_disposable),
    ):
        if applies:
            if skip:
                report.skip(flag, line, email, flag.replace("_", " "))
                return False
            report.flagged[flag] += 1
    if mx is not None:
        problem = mx.problem(domain)
        if problem:
            report.skip("no_mx", line, email, problem)
            return False
    return True
