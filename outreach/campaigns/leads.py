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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from django.db import transaction

from outreach.campaigns import lifecycle
from outreach.campaigns.addresses import MxChecker
from outreach.campaigns.leadfile import (
    Header,
    ImportFileError,
    Lines,
    open_source,
    parse_header,
)
from outreach.campaigns.leadrows import ImportOptions, ImportReport, Row, check_row
from outreach.campaigns.models import Campaign, Lead, Suppression
from outreach.lib import clock

BATCH_SIZE = 1000


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
    stream, size, owned = open_source(source)
    try:
        lines = Lines(stream)
        line_iter = iter(lines)
        header_no, header = _read_header(line_iter)
        mx = MxChecker(options.mx_timeout) if options.check_mx else None
        # Address -> what this import did to it: created, unchanged or updated.
        seen: dict[str, str] = {}
        batch: list[Row] = []
        for row in _checked_rows(line_iter, header_no, header, options, report, mx):
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


def _read_header(line_iter: Iterator[str]) -> tuple[int, Header]:
    """The header's line number (blank lines before it are skipped) and its columns."""
    header_line = ""
    header_no = 0
    for header_line in line_iter:
        header_no += 1
        if header_line.strip():
            break
    if not header_line.strip():
        raise ImportFileError("the file is empty")
    return header_no, parse_header(header_line)


def _checked_rows(
    line_iter: Iterator[str],
    header_no: int,
    header: Header,
    options: ImportOptions,
    report: ImportReport,
    mx: MxChecker | None,
) -> Iterator[Row]:
    """The rows that pass the checks, in file order; every row is counted in ``report``."""
    reader = csv.reader(line_iter, delimiter=header.delimiter)
    previous_line = header_no
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
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
        row = check_row(start, cells, header, options, report, mx)
        if row is not None:
            yield row


# --- merging into the database ---------------------------------------------------------------


_CREATED, _UNCHANGED, _UPDATED = "c", "u", "x"


class _Rollback(Exception):
    pass


def _write_batch(
    rows: list[Row],
    campaign: Campaign | None,
    seen: dict[str, str],
    report: ImportReport,
    dry_run: bool,
) -> None:
    """Merge, write and enroll one batch in one transaction (rolled back on a dry run)."""
    try:
        with transaction.atomic():
            _merge_batch(rows, campaign, seen, report)
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass


def _merge_batch(
    rows: list[Row],
    campaign: Campaign | None,
    seen: dict[str, str],
    report: ImportReport,
) -> None:
    emails = {row.email for row in rows}
    suppressed, suppressed_domains = _suppressed(emails, {row.domain for row in rows})
    existing = {lead.email: lead for lead in Lead.objects.filter(email__in=emails)}
    merge = _Merge(existing, seen, report, clock.now())
    for row in rows:
        if row.email in suppressed or row.domain in suppressed_domains:
            report.skip("suppressed", row.line, row.email, "address or domain is suppressed")
            continue
        merge.add(row)
    if merge.new:
        Lead.objects.bulk_create(list(merge.new.values()))
    if merge.changed:
        Lead.objects.bulk_update(
            [lead for lead in merge.changed.values() if lead.pk is not None],
            ["first_name", "last_name", "company", "title", "timezone", "custom", "updated_at"],
        )
    if campaign is not None and merge.touched:
        _enroll(campaign, merge, report)


def _suppressed(emails: set[str], domains: set[str]) -> tuple[set[str], set[str]]:
    """The suppressed addresses among ``emails`` and suppressed domains among ``domains``."""
    addresses = Suppression.objects.filter(kind=Suppression.Kind.ADDRESS, value__in=emails)
    by_domain = Suppression.objects.filter(kind=Suppression.Kind.DOMAIN, value__in=domains)
    return (
        set(addresses.values_list("value", flat=True)),
        set(by_domain.values_list("value", flat=True)),
    )


@dataclass
class _Merge:
    """One batch's leads as its rows leave them: created, changed, and every one it names."""

    existing: dict[str, Lead]
    seen: dict[str, str]
    report: ImportReport
    now: datetime
    new: dict[str, Lead] = field(default_factory=dict)
    changed: dict[str, Lead] = field(default_factory=dict)
    touched: dict[str, Lead] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        lead = self.new.get(row.email) or self.existing.get(row.email)
        if row.email in self.seen:
            self.report.merged_duplicates += 1
            if lead is not None:  # None on a dry run: the first row's lead was rolled back
                self._fill(lead, row)
            return
        self.touched[row.email] = self._first(lead, row)

    def _first(self, lead: Lead | None, row: Row) -> Lead:
        """The file's first row of an address: creates the lead or overwrites its fields."""
        if lead is None:
            lead = Lead(
                email=row.email, email_domain=row.domain, created_at=self.now, updated_at=self.now
            )
            _apply(lead, row, overwrite=True)
            self.new[row.email] = lead
            self.seen[row.email] = _CREATED
            self.report.imported += 1
        elif _apply(lead, row, overwrite=True):
            lead.updated_at = self.now
            self.changed[row.email] = lead
            self.seen[row.email] = _UPDATED
            self.report.updated += 1
        else:
            self.seen[row.email] = _UNCHANGED
            self.report.unchanged += 1
        return lead

    def _fill(self, lead: Lead, row: Row) -> None:
        """A later row of an address: it only fills the fields still blank."""
        if _apply(lead, row, overwrite=False) and row.email not in self.new:
            lead.updated_at = self.now
            self.changed[row.email] = lead
            if self.seen[row.email] == _UNCHANGED:
                self.seen[row.email] = _UPDATED
                self.report.unchanged -= 1
                self.report.updated += 1


def _enroll(campaign: Campaign, merge: _Merge, report: ImportReport) -> None:
    if merge.new and any(lead.pk is None for lead in merge.new.values()):
        # SQLite before 3.35 returns no ids from bulk_create: fetch them.
        ids = dict(Lead.objects.filter(email__in=merge.new).values_list("email", "pk"))
        for email, lead in merge.new.items():
            lead.pk = ids[email]
    report.enroll.merge(lifecycle.enroll(campaign, list(merge.touched.values())))


def _apply(lead: Lead, row: Row, *, overwrite: bool) -> bool:
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
