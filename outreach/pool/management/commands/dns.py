"""`outreach dns check|plan|apply`: DNS authentication of the sending domains.

- ``check [DOMAIN …] [--json] [--nameserver IP] [--port N]``: run the checks and blocklists,
  store the results, raise alerts; exits 1 when a domain fails critically, 2 when some check
  could not run (and none failed critically).
- ``plan [DOMAIN …]``: the Cloudflare records that are missing or wrong.
- ``apply [DOMAIN …] --yes``: create or fix them; without ``--yes`` it only shows the plan.

Without DOMAIN: every domain that is not retired and sends through a real provider.
"""

from __future__ import annotations

import json
from typing import Any

import cloudflare
from django.core.management.base import BaseCommand, CommandError, CommandParser

from outreach.pool.dns import cloudflare as cf
from outreach.pool.dns.findings import Finding
from outreach.pool.dns.resolver import Resolver, parse_nameservers
from outreach.pool.dns.spec import build_spec
from outreach.pool.dns.store import check_and_store, checked_domains
from outreach.pool.models import Domain

MARKS = {"ok": "ok  ", "fail": "FAIL", "unknown": "??  "}


class Command(BaseCommand):
    help = "Check the DNS of the sending domains; plan and apply fixes through Cloudflare."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        check = sub.add_parser("check", help="check MX, SPF, DKIM, DMARC, MAIL FROM, blocklists")
        check.add_argument("domains", nargs="*", metavar="DOMAIN")
        check.add_argument("--json", action="store_true", help="one JSON object on stdout")
        check.add_argument(
            "--nameserver",
            action="append",
            default=[],
            metavar="IP",
            help="resolver to ask (repeatable); default: OUTREACH_DNS_NAMESERVERS or the system's",
        )
        check.add_argument("--port", type=int, default=53, help="port of --nameserver")
        check.add_argument("--timeout", type=float, default=None, help="seconds per lookup")
        check.add_argument("--no-blocklists", action="store_true", help="skip blocklists")
        for name, text in (("plan", "show the Cloudflare changes"), ("apply", "make them")):
            p = sub.add_parser(name, help=text)
            p.add_argument("domains", nargs="*", metavar="DOMAIN")
            p.add_argument("--json", action="store_true", help="one JSON object on stdout")
            if name == "apply":
                p.add_argument("--yes", action="store_true", help="apply (default: dry run)")

    def handle(self, *args: Any, **options: Any) -> None:
        domains = self._domains(options["domains"])
        if not domains:
            self.stderr.write("no sending domains (sandbox-only and retired ones are skipped)")
            return
        if options["action"] == "check":
            self._check(domains, options)
        else:
            apply = options["action"] == "apply" and options["yes"]
            self._plan(domains, apply=apply, as_json=options["json"])

    def _domains(self, names: list[str]) -> list[Domain]:
        if not names:
            return list(checked_domains().select_related("provider"))
        found = {
            d.name: d for d in Domain.objects.filter(name__in=names).select_related("provider")
        }
        unknown = [n for n in names if n not in found]
        if unknown:
            raise CommandError(f"unknown domain(s): {', '.join(unknown)}")
        return [found[n] for n in names]

    # -- check ------------------------------------------------------------------------------

    def _check(self, domains: list[Domain], options: dict[str, Any]) -> None:
        servers = None
        if options["nameserver"]:
            try:
                servers = parse_nameservers(options["nameserver"], default_port=options["port"])
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        resolver = Resolver(servers, timeout=options["timeout"])
        results = []
        for domain in domains:
            check = check_and_store(domain, resolver, blocklist_checks=not options["no_blocklists"])
            results.append(
                {
                    "domain": domain.name,
                    "outcome": check.outcome,
                    "blocks_sending": check.blocks_sending,
                    "checked_at": check.checked_at.isoformat(),
                    "findings": check.findings,
                }
            )
            if not options["json"]:
                self._print_check(domain.name, check.outcome, check.blocks_sending, check.findings)
        if options["json"]:
            self.stdout.write(json.dumps({"domains": results}, indent=2))
        outcomes = {r["outcome"] for r in results}
        if "critical" in outcomes:
            failing = sum(r["outcome"] == "critical" for r in results)
            raise CommandError(f"{failing} domain(s) fail critically", returncode=1)
        if "unknown" in outcomes:
            raise CommandError("some checks could not run: not all good", returncode=2)

    def _print_check(
        self, name: str, outcome: str, blocks: bool, findings: list[dict[str, Any]]
    ) -> None:
        suffix = " (blocks sending)" if blocks else ""
        self.stdout.write(f"{name}: {outcome.upper()}{suffix}")
        order = {"fail": 0, "unknown": 1, "ok": 2}
        for item in sorted(findings, key=lambda f: order[f["status"]]):
            finding = Finding.from_dict(item)
            severity = f" {finding.severity}" if finding.status == "fail" else ""
            self.stdout.write(
                f"  {MARKS[finding.status]}{severity} {finding.check}: {finding.message}"
            )
            if finding.status != "ok" and finding.fix:
                self.stdout.write(f"        fix: {finding.fix}")

    # -- plan / apply -----------------------------------------------------------------------

    def _plan(self, domains: list[Domain], *, apply: bool, as_json: bool) -> None:
        try:
            client = cf.client_from_env()
            report = [self._plan_one(client, d, apply=apply, as_json=as_json) for d in domains]
        except (cf.CloudflareError, cloudflare.APIError) as exc:
            raise CommandError(f"cloudflare: {exc}") from None
        if as_json:
            self.stdout.write(json.dumps({"applied": apply, "domains": report}, indent=2))
        elif not apply and any(c["action"] != "manual" for d in report for c in d["changes"]):
            self.stdout.write("dry run: nothing changed (outreach dns apply DOMAIN --yes applies)")

    def _plan_one(
        self, client: cloudflare.Cloudflare, domain: Domain, *, apply: bool, as_json: bool
    ) -> dict[str, Any]:
        zone = cf.Zone.find(client, domain.name)
        changes, records = cf.plan(zone, build_spec(domain))
        done = cf.apply_changes(zone, changes, records) if apply else []
        if not as_json:
            self.stdout.write(f"{domain.name} (zone {zone.id}):")
            for change in changes:
                prefix = "  done: " if change in done else "  "
                self.stdout.write(prefix + change.describe())
            if not changes:
                self.stdout.write("  nothing to change")
        return {
            "domain": domain.name,
            "zone_id": zone.id,
            "changes": [c.to_dict() for c in changes],
            "applied": len(done),
        }
