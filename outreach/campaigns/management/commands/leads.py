"""`outreach leads import FILE.csv [--campaign SLUG] [--dry-run] [--strict]`: import (and
enroll) leads. The file's encoding is detected (UTF-8, or cp1252/Latin-1 from a spreadsheet);
``--strict`` makes any row problem an exit status of 1, for scripts."""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import IO, Any, cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from outreach.campaigns.leadfile import ImportFileError
from outreach.campaigns.leadrows import ImportOptions, ImportReport
from outreach.campaigns.leads import import_leads
from outreach.campaigns.models import Campaign

# Below this size an import takes about a second: no progress bar.
PROGRESS_MIN_BYTES = 512 * 1024
ERRORS_SHOWN = 50


class Command(BaseCommand):
    help = "Import leads from a CSV file, optionally enrolling them in a campaign."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="import a CSV file of leads")
        imp.add_argument("file", type=Path)
        imp.add_argument("--campaign", help="slug of the campaign to enroll the leads in")
        imp.add_argument("--dry-run", action="store_true", help="check and count, keep nothing")
        imp.add_argument(
            "--allow-role-accounts", action="store_true", help="import info@, sales@ ... too"
        )
        imp.add_argument(
            "--allow-disposable", action="store_true", help="import disposable domains too"
        )
        imp.add_argument(
            "--check-mx",
            action="store_true",
            default=getattr(settings, "OUTREACH_LEADS_CHECK_MX", False),
            help="reject domains without MX/A records (DNS lookups, cached per domain)",
        )
        imp.add_argument("--errors-csv", type=Path, help="write every row error to this CSV")
        imp.add_argument("--json", action="store_true", help="print the summary as JSON")
        imp.add_argument(
            "--strict",
            action="store_true",
            help="exit with status 1 when any row has a problem (the good rows are imported)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        campaign = None
        if options["campaign"]:
            campaign = Campaign.objects.filter(slug=options["campaign"]).first()
            if campaign is None:
                raise CommandError(f"no campaign {options['campaign']!r}")
        import_options = ImportOptions(
            skip_role_accounts=not options["allow_role_accounts"],
            skip_disposable=not options["allow_disposable"],
            check_mx=options["check_mx"],
        )
        path: Path = options["file"]
        console = Console(file=sys.stderr)
        show_bar = (
            not options["json"]
            and console.is_terminal
            and path.is_file()
            and path.stat().st_size >= PROGRESS_MIN_BYTES
        )
        try:
            if show_bar:
                with Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    DownloadColumn(),
                    TimeRemainingColumn(),
                    console=console,
                ) as bar:
                    task = bar.add_task(f"importing {path.name}", total=path.stat().st_size)
                    report = import_leads(
                        path,
                        campaign,
                        dry_run=options["dry_run"],
                        options=import_options,
                        progress=lambda done, total: bar.update(task, completed=done),
                    )
            else:
                report = import_leads(
                    path, campaign, dry_run=options["dry_run"], options=import_options
                )
        except ImportFileError as exc:
            raise CommandError(f"{path}: {exc}") from None
        if options["errors_csv"]:
            with options["errors_csv"].open("w", newline="", encoding="utf-8") as out:
                report.write_errors_csv(out)
        if options["json"]:
            self.stdout.write(json.dumps(report.summary()))
        else:
            self._print(report, campaign)
        if options["strict"] and report.error_count:
            raise CommandError(f"{report.error_count} row problem(s) (--strict)")

    def _print(self, report: ImportReport, campaign: Campaign | None) -> None:
        console = Console(file=cast(IO[str], self.stdout), highlight=False, soft_wrap=True)
        title = "dry run: nothing was kept" if report.dry_run else "lead import"
        table = Table(title=title, show_header=False)
        table.add_column("what")
        table.add_column("rows", justify="right")
        summary = report.summary()
        for key in ("rows", "imported", "updated", "unchanged", "merged_duplicates"):
            table.add_row(key.replace("_", " "), str(summary[key]))
        for reason, count in summary["skipped"].items():
            table.add_row(f"skipped: {reason.replace('_', ' ')}", str(count))
        for flag, count in summary["flagged"].items():
            table.add_row(f"imported, flagged: {flag.replace('_', ' ')}", str(count))
        if report.invalid_timezones:
            table.add_row("imported without time zone", str(report.invalid_timezones))
        if campaign is not None:
            table.add_row(f"enrolled in {campaign.slug}", str(report.enroll.enrolled))
            table.add_row("already enrolled", str(report.enroll.already_enrolled))
            if report.enroll.in_other_campaign:
                table.add_row(
                    "not enrolled: active in another campaign",
                    str(report.enroll.in_other_campaign),
                )
        console.print(table)
        if report.error_count:
            console.print(f"{report.error_count} row problems:")
            for error in report.errors[:ERRORS_SHOWN]:
                who = f" ({error.email})" if error.email else ""
                console.print(f"  line {error.line}{who}: {error.reason}", markup=False)
            if report.error_count > ERRORS_SHOWN:
                console.print(f"  ... and {report.error_count - ERRORS_SHOWN} more (--errors-csv)")
