"""``outreach doctor [--json] [--test-alert]``: check this deployment; non-zero on critical."""

from __future__ import annotations

import io
import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from rich.console import Console
from rich.table import Table

from outreach.doctor import CRITICAL, run_checks

STYLE = {"critical": "bold red", "warning": "yellow", "ok": "green"}


class Command(BaseCommand):
    help = "Check settings, database, providers, webhooks, alerts, DNS and engine loops."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--test-alert", action="store_true", help="send a test alert")

    def handle(self, *args: Any, **options: Any) -> None:
        findings = run_checks(send_test_alert=options["test_alert"])
        critical = sum(f.severity == CRITICAL for f in findings)
        if options["json"]:
            self.stdout.write(
                json.dumps({"critical": critical, "findings": [f.to_dict() for f in findings]})
            )
        else:
            table = Table("area", "status", "finding", "fix")
            for f in findings:
                table.add_row(f.area, f"[{STYLE[f.severity]}]{f.severity}[/]", f.message, f.fix)
            buffer = io.StringIO()
            Console(file=buffer, width=160).print(table)
            self.stdout.write(buffer.getvalue().rstrip("\n"))
            self.stdout.write(f"{critical} critical finding(s)")
        if critical:
            raise SystemExit(1)
