"""The pool: provider accounts, sending domains, mailboxes, pool-wide settings, audit log."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from django.db import models

from outreach.lib import clock, sql
from outreach.pool import policy


class PoolSettings(models.Model):
    """Pool-wide configuration; a single row (id=1), written by ``outreach apply``.

    ``limits``, ``warmup`` and ``thresholds`` hold the keys of the matching dataclasses in
    :mod:`outreach.pool.policy`; read them through the properties, which fill in defaults.
    """

    timezone = models.CharField(max_length=64, default="UTC")
    limits_json = models.JSONField(default=dict, blank=True)
    warmup_json = models.JSONField(default=dict, blank=True)
    thresholds_json = models.JSONField(default=dict, blank=True)
    seed_addresses = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = "pool settings"
        verbose_name_plural = "pool settings"

    def __str__(self) -> str:
        return f"pool settings ({self.timezone})"

    @classmethod
    def load(cls) -> PoolSettings:
        # Read with a statement written once (lib/sql.py): the checks after every batch of
        # sends read the pool's settings, and the ORM's get cost more than the rest of them.
        found = sql.load(cls, [1]).get(1)
        if found is not None:
            return found
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

    @property
    def limits(self) -> policy.Limits:
        return policy.Limits(**self.limits_json)

    @property
    def warmup(self) -> policy.WarmupSchedule:
        return policy.WarmupSchedule(**self.warmup_json)

    @property
    def thresholds(self) -> policy.Thresholds:
        return policy.Thresholds.from_dict(self.thresholds_json)


class ProviderAccount(models.Model):
    """One account at one provider (an SES region/identity set, a Mailgun domain, an SMTP host).

    ``settings`` holds non-secret options (host, port, security, region, configuration set...).
    ``secrets`` maps option names to secret references (see outreach.lib.secrets), never to
    plain values.
    """

    class Kind(models.TextChoices):
        SANDBOX = "sandbox"
        SMTP = "smtp"
        GOOGLE = "google"  # Google Workspace mailboxes over SMTP (XOAUTH2 or app passwords)
        MICROSOFT = "microsoft"  # Microsoft 365 mailboxes over SMTP (XOAUTH2)
        SES = "ses"
        MAILGUN = "mailgun"
        POSTMARK = "postmark"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    settings = models.JSONField(default=dict, blank=True)
    secrets = models.JSONField(default=dict, blank=True)
    standby = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="primaries"
    )
    price_per_1000 = models.DecimalField(max_digits=8, decimal_places=4, default=0)
    # Provider's own send rate (SES MaxSendRate), messages per second; None = unlimited.
    max_send_rate = models.FloatField(null=True, blank=True)
    # When this account's next send may start, for every worker together: batches reserve
    # their sends' slots here (outreach.sending.take.reserve_rate). None: never limited.
    rate_slot_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Domain(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active"
        COOLDOWN = "cooldown"
        RETIRED = "retired"

    name = models.CharField(max_length=253, unique=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    cooldown_until = models.DateTimeField(null=True, blank=True)
    provider = models.ForeignKey(ProviderAccount, on_delete=models.PROTECT, related_name="domains")
    # None: the pool's domain cap applies.
    daily_cap = models.PositiveIntegerField(null=True, blank=True)
    yearly_price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    # DKIM selector and custom MAIL FROM host, when configured (DNS checks read them).
    dkim_selector = models.CharField(max_length=63, blank=True)
    mail_from = models.CharField(max_length=253, blank=True)
    # The host of this domain that serves its open pixels and tracked links (a CNAME to the
    # outreach server); blank = t.<name>. Never shared between domains.
    tracking_host = models.CharField(max_length=253, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def cap(self, limits: policy.Limits) -> int:
        return Domain.cap_of(self.daily_cap, limits)

    @staticmethod
    def cap_of(daily_cap: int | None, limits: policy.Limits) -> int:
        """A domain's daily cap: its own when it has one, else the pool's (for a caller that
        reads domains as plain rows)."""
        return daily_cap if daily_cap is not None else limits.domain_daily_cap

    @property
    def tracking_hostname(self) -> str:
        return self.tracking_host or f"t.{self.name}"


# How a mailbox (or a seed) connects to its IMAP server: implicit TLS, STARTTLS, or neither.
IMAP_SECURITY = ("ssl", "starttls", "plain")


class Mailbox(models.Model):
    """A sending address. State machine (docs/rules.md, Mailbox and domain states):

    ``warming`` → ``active`` ⇄ ``paused`` (human review) / ``cooldown`` (until a date, then
    back to warm-up at a reduced level) → ``retired``.
    """

    class State(models.TextChoices):
        WARMING = "warming"
        ACTIVE = "active"
        PAUSED = "paused"
        COOLDOWN = "cooldown"
        RETIRED = "retired"

    address = models.EmailField(unique=True)
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="mailboxes")
    display_name = models.CharField(max_length=128, blank=True)
    reply_to = models.EmailField(blank=True)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.WARMING, db_index=True
    )
    # None: the pool's mailbox cap applies. For a warming mailbox this is the warm-up target.
    daily_cap = models.PositiveIntegerField(null=True, blank=True)
    # Warm-up progress: day 1 is warmup_started_on; warmup_start_day > 1 re-enters the
    # schedule at a reduced level after a cooldown.
    warmup_started_on = models.DateField(null=True, blank=True)
    warmup_start_day = models.PositiveIntegerField(default=1)
    cooldown_until = models.DateTimeField(null=True, blank=True)
    # Pacing: no send before this instant (last send + gap + jitter).
    next_send_at = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    pacing_gap_seconds = models.PositiveIntegerField(null=True, blank=True)
    # None: the domain's provider account.
    provider = models.ForeignKey(
        ProviderAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="mailboxes"
    )
    # Per-mailbox credentials (SMTP login, IMAP, DKIM key): non-secret options and secret refs.
    settings = models.JSONField(default=dict, blank=True)
    secrets = models.JSONField(default=dict, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Set when the provider refused the mailbox's credentials (the mailbox is paused with
    # it); `outreach mailbox connect` clears it. The provider's own words are kept.
    auth_failed_at = models.DateTimeField(null=True, blank=True)
    auth_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["address"]
        verbose_name_plural = "mailboxes"

    def __str__(self) -> str:
        return self.address

    @property
    def provider_account(self) -> ProviderAccount:
        return self.provider or self.domain.provider

    def target_cap(self, limits: policy.Limits) -> int:
        return target_cap(self, limits)

    def cap_today(self, pool: PoolSettings, today: Any = None) -> int:
        """How many messages this mailbox may send on ``today`` (the pool's day)."""
        return self.cap_on(today or clock.today(pool.timezone), pool.limits, pool.warmup)

    def cap_on(self, day: Any, limits: policy.Limits, warmup: policy.WarmupSchedule) -> int:
        """:meth:`cap_today` with the pool's settings already read (a whole pool at once)."""
        return cap_on(self, day, limits, warmup)


# The cap arithmetic of a mailbox, owned here, over any object with a mailbox's cap fields (a
# Mailbox, or the dashboard's rows read with .values()).


class CapFields(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def daily_cap(self) -> int | None: ...
    @property
    def warmup_started_on(self) -> date | None: ...
    @property
    def warmup_start_day(self) -> int: ...


def target_cap(mailbox: CapFields, limits: policy.Limits) -> int:
    """The mailbox's own daily cap, or the pool's ``mailbox_daily_cap``."""
    return mailbox.daily_cap if mailbox.daily_cap is not None else limits.mailbox_daily_cap


def warmup_day(mailbox: CapFields, day: date) -> int | None:
    """Day of the warm-up schedule a warming mailbox is on (None for the others)."""
    if mailbox.state != Mailbox.State.WARMING or mailbox.warmup_started_on is None:
        return None
    return (day - mailbox.warmup_started_on).days + mailbox.warmup_start_day


def cap_on(
    mailbox: CapFields, day: date, limits: policy.Limits, warmup: policy.WarmupSchedule
) -> int:
    """How many messages the mailbox may send on ``day``: its target when active, the warm-up
    ramp's cap when warming, nothing otherwise."""
    if mailbox.state == Mailbox.State.ACTIVE:
        return target_cap(mailbox, limits)
    warmup_n = warmup_day(mailbox, day)
    if warmup_n is None:
        return 0
    return policy.warmup_cap(warmup_n, warmup, target=target_cap(mailbox, limits))


class AccessToken(models.Model):
    """A cached OAuth2 access token (outreach.providers.oauth2), encrypted, shared by every
    worker. ``key`` is a digest of the credentials it was fetched with, never the token."""

    key = models.CharField(max_length=64, unique=True)
    # A secret reference (``enc:...``): the token itself is never stored in plain text.
    token = models.TextField()
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"access token {self.key[:8]}… until {self.expires_at:%Y-%m-%d %H:%M}"


class StateChange(models.Model):
    """The audit log: every state transition with its reason and the figures behind it."""

    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.CASCADE, related_name="state_changes"
    )
    domain = models.ForeignKey(
        Domain, null=True, blank=True, on_delete=models.CASCADE, related_name="state_changes"
    )
    provider = models.ForeignKey(
        ProviderAccount,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="state_changes",
    )
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    reason = models.CharField(max_length=500)
    figures = models.JSONField(default=dict, blank=True)
    # "rule:<name>", "user:<username>", "config:apply", "system".
    actor = models.CharField(max_length=150)
    at = models.DateTimeField(default=clock.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        subject = self.mailbox or self.domain or self.provider
        return f"{subject}: {self.from_state} → {self.to_state} ({self.reason})"


class DnsCheck(models.Model):
    """One run of the DNS checks (authentication records and blocklists) for a domain.

    ``findings`` holds :class:`outreach.pool.dns.findings.Finding` dicts. ``blocks_sending``
    is the verdict the scheduler reads through ``outreach.pool.dns.sending_blocked``: a
    critical failure blocks; a run that could not check keeps the previous verdict.
    """

    class Outcome(models.TextChoices):
        OK = "ok"
        WARNING = "warning"
        UNKNOWN = "unknown"  # could not check: never read as "all good"
        CRITICAL = "critical"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dns_checks")
    checked_at = models.DateTimeField(default=clock.now)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    findings = models.JSONField(default=list, blank=True)
    blocks_sending = models.BooleanField(default=False)

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["domain", "-checked_at"], name="dnscheck_domain_latest")]

    def __str__(self) -> str:
        return f"{self.domain}: {self.outcome} at {self.checked_at:%Y-%m-%d %H:%M}"


class SesIdentity(models.Model):
    """The SES domain identity of a sending domain, as ``outreach ses setup`` left it.

    Its DKIM tokens and MAIL FROM host are what the DNS checks and ``outreach dns plan``
    expect to find in the domain's zone.
    """

    domain = models.OneToOneField(Domain, on_delete=models.CASCADE, related_name="ses_identity")
    region = models.CharField(max_length=32)
    dkim_tokens = models.JSONField(default=list, blank=True)
    dkim_status = models.CharField(max_length=32, blank=True)
    verified_for_sending = models.BooleanField(default=False)
    mail_from = models.CharField(max_length=253, blank=True)
    mail_from_status = models.CharField(max_length=32, blank=True)
    configuration_set = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = "SES identity"
        verbose_name_plural = "SES identities"

    def __str__(self) -> str:
        return f"SES identity {self.domain} ({self.region})"
