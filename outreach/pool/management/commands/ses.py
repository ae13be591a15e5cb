"""`outreach ses setup DOMAIN`: SES identity, DKIM, MAIL FROM, configuration set (see
:mod:`outreach.pool.ses_setup`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from outreach.lib.secrets import SecretError
from outreach.pool.models import Domain, ProviderAccount
from outreach.pool.ses_setup import SesSetupError, ses_client, setup_domain


class Command(BaseCommand):
    help = "Set up the SES side of a sending domain (identity, DKIM, MAIL FROM, events)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        setup = sub.add_parser("setup", help="create or read the SES domain identity")
        setup.add_argument("domain", metavar="DOMAIN")
        setup.add_argument("--region", help="default: the provider account's region")
        setup.add_argument("--mail-from", help="custom MAIL FROM host (default bounce.DOMAIN)")
        setup.add_argument(
            "--configuration-set", help="default: the provider account's, or outreach"
        )
        setup.add_argument(
            "--sns-topic-arn",
            default="",
            help="SNS topic subscribed to /webhooks/amazon_ses/tracking/ for SES events",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        domain = Domain.objects.select_related("provider").filter(name=options["domain"]).first()
        if domain is None:
            raise CommandError(f"unknown domain: {options['domain']}")
        account = domain.provider
        if account.kind != ProviderAccount.Kind.SES:
            raise CommandError(f"{domain.name} sends through {account.kind}, not SES")
        region = options["region"] or account.settings.get("region") or "us-east-1"
        try:
            client = self.client(account, region)
            result = setup_domain(
                domain,
                client,
                region=region,
                mail_from=options["mail_from"],
                configuration_set=options["configuration_set"],
                sns_topic_arn=options["sns_topic_arn"],
            )
        except (SesSetupError, SecretError) as exc:
            raise CommandError(str(exc)) from None
        for step in result.steps:
            self.stdout.write(f"  {step}")
        identity = result.identity
        self.stdout.write(f"DKIM ({identity.dkim_status or 'pending'}): publish these CNAMEs")
        for token in identity.dkim_tokens:
            self.stdout.write(f"  {token}._domainkey.{domain.name} → {token}.dkim.amazonses.com")
        self.stdout.write(f"MAIL FROM {identity.mail_from}:")
        self.stdout.write(f"  MX 10 feedback-smtp.{region}.amazonses.com")
        self.stdout.write('  TXT "v=spf1 include:amazonses.com ~all"')
        self.stdout.write(
            f"next: outreach dns plan {domain.name} (and apply --yes), then outreach dns check"
        )

    def client(self, account: ProviderAccount, region: str) -> Any:
        # A seam for tests: they hand in a client wrapped in botocore's Stubber.
        return ses_client(account, region)
