"""`outreach campaign apply FILE.toml` and `outreach campaign validate|preview|start|pause|
resume|stop SLUG`: campaigns from the command line."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from outreach.campaigns import config, lifecycle
from outreach.campaigns.addresses import InvalidAddress, normalize_email
from outreach.campaigns.cold_mail import FIX, cold_mail_warning
from outreach.campaigns.models import Campaign, Lead
from outreach.campaigns.preview import PreviewError, format_preview, preview_message
from outreach.campaigns.templates import RenderError
from outreach.campaigns.validation import validate_campaign

ACTIONS = ("validate", "start", "pause", "resume", "stop")


class Command(BaseCommand):
    help = "Define campaigns from TOML files, validate, preview, start, pause, resume, stop."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        apply = sub.add_parser("apply", help="create or update a campaign from a TOML file")
        apply.add_argument("file", type=Path)
        for action in ACTIONS:
            parser_of_action = sub.add_parser(action, help=f"{action} a campaign")
            parser_of_action.add_argument("slug")
            if action == "start":
                parser_of_action.add_argument(
                    "--if-draft",
                    action="store_true",
                    help="start only a draft; leave a campaign already started (active, "
                    "paused by a person or a rule, stopped, finished) as it is",
                )
        preview = sub.add_parser("preview", help="print the exact message a lead would get")
        preview.add_argument("slug")
        preview.add_argument("--lead", required=True, help="the lead's email address")
        preview.add_argument("--step", type=int, default=1, help="step position (default 1)")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "apply":
            self._apply(options["file"])
            return
        campaign = Campaign.objects.filter(slug=options["slug"]).first()
        if campaign is None:
            raise CommandError(f"no campaign {options['slug']!r}")
        if action == "preview":
            self._preview(campaign, options["lead"], options["step"])
        elif action == "validate":
            self._validate(campaign)
        elif action == "start" and options["if_draft"] and campaign.state != Campaign.State.DRAFT:
            self.stdout.write(f"campaign {campaign.slug}: {campaign.state} (already started)")
        else:
            self._transition(campaign, action)

    def _apply(self, path: Path) -> None:
        try:
            spec = config.load(path)
            changes = config.apply(spec)
        except config.InvalidTemplates as exc:
            for problem in exc.problems:
                self.stderr.write(problem)
            raise CommandError(f"{path}: {exc}") from None
        except config.ConfigError as exc:
            raise CommandError(f"{path}: {exc}") from None
        for line in changes:
            self.stdout.write(line)
        if not changes:
            self.stdout.write(f"campaign {spec.slug}: no changes")
        found = config.problems(spec)
        for problem in found:
            self.stderr.write(problem)
        if found:
            self.stderr.write(
                f"campaign {spec.slug}: {len(found)} problem(s) to fix before it can start"
            )

    def _validate(self, campaign: Campaign) -> None:
        problems = validate_campaign(campaign)
        for problem in problems:
            self.stdout.write(problem)
        if problems:
            raise CommandError(f"campaign {campaign.slug}: {len(problems)} problem(s)")
        enrolled = campaign.enrollments.count()
        self.stdout.write(f"campaign {campaign.slug}: OK ({enrolled} enrolled leads rendered)")

    def _preview(self, campaign: Campaign, email: str, position: int) -> None:
        try:
            address = normalize_email(email)
        except InvalidAddress as exc:
            raise CommandError(f"--lead: {exc}") from None
        lead = Lead.objects.filter(email=address).first()
        if lead is None:
            raise CommandError(f"no lead {address}")
        step = campaign.steps.filter(position=position).first()
        if step is None:
            raise CommandError(f"campaign {campaign.slug} has no step {position}")
        try:
            self.stdout.write(format_preview(preview_message(step, lead)))
        except (RenderError, PreviewError) as exc:
            raise CommandError(f"lead {lead.pk} ({lead.email}): step {position}: {exc}") from None

    def _transition(self, campaign: Campaign, action: str) -> None:
        actor = "cli"
        try:
            if action == "stop":
                cancelled = lifecycle.stop(campaign, actor)
                self.stdout.write(
                    f"campaign {campaign.slug}: stopped, {cancelled} unsent messages cancelled"
                )
                return
            getattr(lifecycle, action)(campaign, actor)
        except lifecycle.CampaignInvalid as exc:
            for problem in exc.problems:
                self.stdout.write(problem)
            raise CommandError(
                f"campaign {campaign.slug} does not validate ({len(exc.problems)} problem(s)): "
                "not started"
            ) from None
        except lifecycle.CampaignError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"campaign {campaign.slug}: {campaign.state}")
        if action in ("start", "resume"):
            warning = cold_mail_warning(campaign)
            if warning:
                self.stdout.write(self.style.WARNING(f"warning: {warning}\n  fix: {FIX}"))
