"""Lead import from CSV: header mapping, validation, merging, suppression, enrollment.

The file is streamed: rows are read, checked and written in batches, so memory stays bounded
whatever the file's size (the one structure that grows is the set of addresses already seen,
to merge duplicates inside the file). Each batch is one transaction, so a row is never half
imported; file-level problems (no email column, not a CSV) are found on the header line,
before anything is written. Bad rows are reported with their line number and the rest of the
file is imported. Importing the same file again changes nothing.

Merge rules: the first row of an address in the file overwrites the stored lead's fields with
its non-blank values; later rows of the same address only fill fields still blank. Blank
values never erase anything.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any
from zoneinfo import available_timezones

import charset_normalizer
import email_validator
from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS
from django.db import transaction

from outreach.campaigns import lifecycle
from outreach.campaigns.csvsafe import write_rows
from outreach.campaigns.models import Campaign, Lead, Suppression
from outreach.lib import clock

# A real CSV line of leads is well under a few kilobytes; a longer one is a broken export or
# a hostile file, and reading it whole would break the bounded-memory promise.
MAX_LINE_BYTES = 64 * 1024
# How much of the file the encoding is guessed from (charset-normalizer reads it whole).
ENCODING_SAMPLE_BYTES = 256 * 1024
MAX_CUSTOM_VALUE = 1000
BATCH_SIZE = 1000
# Row errors kept for the report; the count goes on beyond this.
MAX_ERRORS_KEPT = 10_000
DELIMITERS = (",", ";", "\t", "|")

FIELD_ALIASES = {
    "email": ("email", "e_mail", "email_address", "e_mail_address", "mail", "work_email"),
    "first_name": ("first_name", "firstname", "first", "given_name", "forename"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name"),
    "company": ("company", "company_name", "organization", "organisation", "account"),
    "title": ("title", "job_title", "position", "role", "jobtitle"),
    "timezone": ("timezone", "time_zone", "tz"),
}
_ALIAS_TO_FIELD = {alias: name for name, aliases in FIELD_ALIASES.items() for alias in aliases}
# Names the templates give to something else: a column with one of these names is refused.
RESERVED = frozenset({"lead", "sender_name", "sender_first_name", "sender_email"})
MAX_LENGTHS = {"first_name": 100, "last_name": 100, "company": 200, "title": 200}

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

_OVERLONG = "\x00\x00overlong-line\x00\x00"
_SPACES = re.compile(r"\s+")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (nothing was written)."""


class InvalidAddress(ValueError):
    pass


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


# --- addresses -------------------------------------------------------------------------------


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


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


# --- reading the file ------------------------------------------------------------------------


def detect_encoding(sample: bytes) -> str:
    """The encoding of a CSV file from a sample of its bytes: UTF-8 when the sample holds any
    UTF-8 character, else what charset-normalizer finds (Excel's "CSV" is cp1252 on
    Windows), else UTF-8 (bytes it cannot decode are then reported row by row)."""
    text = sample.decode("utf-8", "surrogateescape")
    if any(char > "\x7f" and not "\udc80" <= char <= "\udcff" for char in text):
        # UTF-8 characters (cut mid-character at the end of the sample, or beside a row of
        # another encoding): a UTF-8 file, and the rows that are not are reported one by one.
        return "utf-8"
    best = charset_normalizer.from_bytes(sample).best()
    if best is None:
        return "utf-8"
    # A few accented names fit many single-byte code pages equally well, and a list of names
    # is too short for the language guess to tell them apart ("Crédit à" reads as cp1257's
    # "Crédit ą"): when Windows' Western code page reads the sample as cleanly as the best
    # guess, it wins; it is the encoding of most spreadsheets saved as "CSV" that are not
    # UTF-8. Cyrillic or Greek text reads as gibberish in it and keeps its own code page.
    western = charset_normalizer.from_bytes(sample, cp_isolation=["cp1252"]).best()
    if western is not None and western.chaos <= best.chaos:
        return "cp1252"
    return best.encoding


class _Lines:
    """Decoded lines of a binary or text stream, each at most MAX_LINE_BYTES long.

    An overlong line is consumed to its end and replaced by a marker, so it becomes one row
    error instead of a memory spike. The encoding is decided at the first line that is not
    ASCII (every line before it reads the same in any of the candidates), from that line and
    up to ENCODING_SAMPLE_BYTES after it when the stream can seek back. Bytes the encoding
    cannot decode are kept as surrogates and reported by the row that holds them.
    """

    def __init__(self, stream: IO[Any]) -> None:
        self.stream = stream
        self.bytes_read = 0
        self.first = True
        self.encoding: str | None = None  # None while every line was ASCII

    def _decide(self, line: bytes) -> str:
        sample = line
        if getattr(self.stream, "seekable", lambda: False)():
            position = self.stream.tell()
            more = self.stream.read(ENCODING_SAMPLE_BYTES)
            self.stream.seek(position)
            sample += more if isinstance(more, bytes) else more.encode("utf-8", "surrogateescape")
        return detect_encoding(sample)

    def __iter__(self) -> Iterator[str]:
        while True:
            chunk = self.stream.readline(MAX_LINE_BYTES + 1)
            if not chunk:
                return
            raw = chunk if isinstance(chunk, bytes) else chunk.encode("utf-8", "surrogateescape")
            self.bytes_read += len(raw)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while True:  # the rest of the overlong line, in bounded chunks
                    rest = self.stream.readline(MAX_LINE_BYTES)
                    if not rest:
                        break
                    rest_b = rest if isinstance(rest, bytes) else rest.encode("utf-8", "replace")
                    self.bytes_read += len(rest_b)
                    if rest_b.endswith(b"\n"):
                        break
                yield _OVERLONG + "\n"
                continue
            if self.first:
                self.first = False
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if self.encoding is None and not raw.isascii():
                self.encoding = self._decide(raw)
            yield raw.decode(self.encoding or "ascii", "surrogateescape")


def _open(source: str | os.PathLike[str] | IO[Any]) -> tuple[IO[Any], int | None, bool]:
    """The stream, its size when known, and whether we opened it (and must close it)."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            return path.open("rb"), path.stat().st_size, True
        except OSError as exc:
            raise ImportFileError(f"cannot read {path}: {exc.strerror}") from None
    size = getattr(source, "size", None)
    return source, size if isinstance(size, int) else None, False


def _has_bad_bytes(text: str) -> bool:
    # surrogateescape maps each byte that is not UTF-8 to U+DC80..U+DCFF.
    if text.isascii():
        return False
    return any("\udc80" <= char <= "\udcff" for char in text)


def _column_key(header: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")
    if key and key[0].isdigit():
        key = f"field_{key}"
    return key


@dataclass
class _Header:
    delimiter: str
    # Per column: the Lead field or custom key it feeds.
    keys: list[str]
    email_index: int


def _parse_header(line: str) -> _Header:
    if _OVERLONG in line:
        raise ImportFileError("the header line is too long: is this a CSV file of leads?")
    if _has_bad_bytes(line):
        raise ImportFileError("the header is not UTF-8 text: save the file as CSV UTF-8")
    if "\x00" in line:
        raise ImportFileError("the file is binary, not CSV text")
    candidates = []
    for delimiter in DELIMITERS:
        columns = next(csv.reader([line], delimiter=delimiter), [])
        keys = [_column_key(c) for c in columns]
        fields = [_ALIAS_TO_FIELD.get(k, k) for k in keys]
        if "email" in fields:
            candidates.append((delimiter, fields, columns))
    if not candidates:
        found = next(csv.reader([line]), [])
        guess = max(DELIMITERS, key=line.count)
        hint = ""
        if guess != "," and line.count(guess) and len(found) <= 1:
            hint = f" (the header looks {guess!r}-separated)"
        raise ImportFileError(
            "no email column in the header; expected one of "
            f"{', '.join(FIELD_ALIASES['email'])}; found: {', '.join(found) or 'nothing'}{hint}"
        )
    delimiter, fields, columns = max(candidates, key=lambda c: len(c[1]))
    for index, key in enumerate(fields):
        if not key:
            fields[index] = f"column_{index + 1}"
    duplicates = [k for k, n in Counter(fields).items() if n > 1]
    if duplicates:
        raise ImportFileError(f"several columns map to {', '.join(duplicates)}: keep one of each")
    reserved = RESERVED.intersection(fields)
    if reserved:
        raise ImportFileError(
            f"column name {', '.join(sorted(reserved))} is reserved for templates: rename it"
        )
    return _Header(delimiter, fields, fields.index("email"))


# --- rows ------------------------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    email: str
    domain: str
    values: dict[str, str]  # Lead fields, non-blank only
    custom: dict[str, str]  # non-blank only


def _clean(value: str) -> str:
    # CR, LF, tabs and runs of spaces become one space: lead data ends up in headers
    # (subject, To display name) where a line break would start a new header.
    return _SPACES.sub(" ", value).strip()


def _check_row(
    line: int,
    cells: list[str],
    header: _Header,
    options: ImportOptions,
    report: ImportReport,
    mx: MxChecker | None,
) -> _Row | None:
    raw_email = cells[header.email_index] if header.email_index < len(cells) else ""
    shown = _clean(raw_email)[:254]
    if any(_OVERLONG in cell for cell in cells):
        report.skip("bad_row", line, "", f"line longer than {MAX_LINE_BYTES} bytes")
        return None
    if any(_has_bad_bytes(cell) for cell in cells):
        shown = shown.encode("utf-8", "replace").decode("utf-8", "replace")
        report.skip("bad_row", line, shown, "not valid UTF-8: save the file as CSV UTF-8")
        return None
    if len(cells) != len(header.keys):
        report.skip(
            "bad_row",
            line,
            shown,
            f"{len(cells)} fields where the header has {len(header.keys)} (wrong delimiter or "
            "unquoted separator?)",
        )
        return None
    try:
        email = normalize_email(raw_email)
    except InvalidAddress as exc:
        report.skip("invalid_email", line, shown, str(exc))
        return None
    domain = email.rpartition("@")[2]
    reserved = reserved_domain(domain)
    if reserved:
        detail = f"{reserved} is reserved for examples (RFC 2606): it receives no mail"
        report.skip("invalid_email", line, email, detail)
        return None
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
    for flag, applies, skip in (
        ("role_account", is_role_account(email), options.skip_role_accounts),
        ("disposable_domain", is_disposable(domain), options.skip_disposable),
    ):
        if applies:
            if skip:
                report.skip(flag, line, email, flag.replace("_", " "))
                return None
            report.flagged[flag] += 1
    if mx is not None:
        problem = mx.problem(domain)
        if problem:
            report.skip("no_mx", line, email, problem)
            return None
    return _Row(line, email, domain, values, custom)


# --- the import ------------------------------------------------------------------------------


def import_leads(
    source: str | os.PathLike[str] | IO[Any],
    campaign: Campaign | None = None,
    *,
    dry_run: bool = False,
    options: ImportOptions | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> ImportReport:
    """Import the leads of a CSV file (a path, or a binary or text stream).

    With ``campaign``, imported and already-known leads of the file are enrolled (see
    :func:`outreach.campaigns.lifecycle.enroll`). With ``dry_run`` every check and count is
    the same but nothing is kept. ``progress(bytes_read, total_bytes)`` is called after each
    batch. Raises :class:`ImportFileError` when the file cannot be imported at all.
    """
    options = options or ImportOptions()
    report = ImportReport(dry_run=dry_run)
    if campaign is not None and campaign.state not in lifecycle.LIVE_STATES:
        raise ImportFileError(f"campaign {campaign.slug} is {campaign.state}: nobody can join it")
    stream, size, owned = _open(source)
    try:
        lines = _Lines(stream)
        line_iter = iter(lines)
        header_line = ""
        header_no = 0
        for header_line in line_iter:
            header_no += 1
            if header_line.strip():
                break
        if not header_line.strip():
            raise ImportFileError("the file is empty")
        header = _parse_header(header_line)
        mx = MxChecker(options.mx_timeout) if options.check_mx else None
        # Address -> what this import did to it: created, unchanged or updated.
        seen: dict[str, str] = {}
        batch: list[_Row] = []
        reader = csv.reader(line_iter, delimiter=header.delimiter)
        previous_line = header_no
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                report.rows += 1
                report.skip("bad_row", previous_line + 1, "", f"unreadable CSV: {exc}")
                previous_line = header_no + reader.line_num
                continue
            start = previous_line + 1
            previous_line = header_no + reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            report.rows += 1
            row = _check_row(start, cells, header, options, report, mx)
            if row is not None:
                batch.append(row)
            if len(batch) >= BATCH_SIZE:
                _write_batch(batch, campaign, seen, report, dry_run)
                batch = []
                if progress:
                    progress(lines.bytes_read, size)
        if batch:
            _write_batch(batch, campaign, seen, report, dry_run)
        if progress:
            progress(lines.bytes_read, size)
    finally:
        if owned:
            stream.close()
    return report


_CREATED, _UNCHANGED, _UPDATED = "c", "u", "x"


class _Rollback(Exception):
    pass


def _write_batch(
    rows: list[_Row],
    campaign: Campaign | None,
    seen: dict[str, str],
    report: ImportReport,
    dry_run: bool,
) -> None:
    """Merge, write and enroll one batch in one transaction (rolled back on a dry run)."""
    try:
        with transaction.atomic():
            _merge_batch(rows, campaign, seen, report, dry_run)
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass


def _merge_batch(
    rows: list[_Row],
    campaign: Campaign | None,
    seen: dict[str, str],
    report: ImportReport,
    dry_run: bool,
) -> None:
    emails = {row.email for row in rows}
    domains = {row.domain for row in rows}
    suppressed = set(
        Suppression.objects.filter(kind=Suppression.Kind.ADDRESS, value__in=emails).values_list(
            "value", flat=True
        )
    )
    suppressed_domains = set(
        Suppression.objects.filter(kind=Suppression.Kind.DOMAIN, value__in=domains).values_list(
            "value", flat=True
        )
    )
    existing = {lead.email: lead for lead in Lead.objects.filter(email__in=emails)}
    now = clock.now()
    new: dict[str, Lead] = {}
    changed: dict[str, Lead] = {}
    touched: dict[str, Lead] = {}
    for row in rows:
        if row.email in suppressed or row.domain in suppressed_domains:
            report.skip("suppressed", row.line, row.email, "address or domain is suppressed")
            continue
        lead = new.get(row.email) or existing.get(row.email)
        if row.email in seen:
            report.merged_duplicates += 1
            if lead is None:  # dry run: the first row's lead was rolled back
                continue
            if _apply(lead, row, overwrite=False) and row.email not in new:
                lead.updated_at = now
                changed[row.email] = lead
                if seen[row.email] == _UNCHANGED:
                    seen[row.email] = _UPDATED
                    report.unchanged -= 1
                    report.updated += 1
            continue
        if lead is None:
            lead = Lead(email=row.email, email_domain=row.domain, created_at=now, updated_at=now)
            _apply(lead, row, overwrite=True)
            new[row.email] = lead
            seen[row.email] = _CREATED
            report.imported += 1
        elif _apply(lead, row, overwrite=True):
            lead.updated_at = now
            changed[row.email] = lead
            seen[row.email] = _UPDATED
            report.updated += 1
        else:
            seen[row.email] = _UNCHANGED
            report.unchanged += 1
        touched[row.email] = lead
    if new:
        Lead.objects.bulk_create(list(new.values()))
    if changed:
        Lead.objects.bulk_update(
            [lead for lead in changed.values() if lead.pk is not None],
            ["first_name", "last_name", "company", "title", "timezone", "custom", "updated_at"],
        )
    if campaign is not None and touched:
        if new and any(lead.pk is None for lead in new.values()):
            # SQLite before 3.35 returns no ids from bulk_create: fetch them.
            ids = dict(Lead.objects.filter(email__in=new).values_list("email", "pk"))
            for email, lead in new.items():
                lead.pk = ids[email]
        report.enroll.merge(lifecycle.enroll(campaign, list(touched.values())))


def _apply(lead: Lead, row: _Row, *, overwrite: bool) -> bool:
    """Copy ``row``'s non-blank values into ``lead``; True when anything changed."""
    changed = False
    for name, value in row.values.items():
        current = getattr(lead, name)
        if current != value and (overwrite or not current):
            setattr(lead, name, value)
            changed = True
    custom = dict(lead.custom or {})
    for key, value in row.custom.items():
        current = custom.get(key)
        if current != value and (overwrite or not current):
            custom[key] = value
            changed = True
    lead.custom = custom
    return changed
