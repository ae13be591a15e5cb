"""Daily rollups: the counts health rules, the dashboard and /metrics read instead of raw events."""

from __future__ import annotations

from django.db import models


class DailyRollup(models.Model):
    """Counts for one pool day and one combination of mailbox, campaign, step, variant, provider.

    The dimensions are plain ids with 0 for "none" (a warm-up message has no campaign, an
    unmatched event has no mailbox) rather than nullable foreign keys: NULLs are distinct in a
    unique constraint on both SQLite and PostgreSQL, and the incremental upsert needs that
    constraint to hold. Rollups also outlive a deleted campaign or mailbox this way.
    ``domain_id`` is stored (it follows from the mailbox) so per-domain sums need no join.
    """

    day = models.DateField()
    mailbox_id = models.BigIntegerField(default=0)
    domain_id = models.BigIntegerField(default=0)
    campaign_id = models.BigIntegerField(default=0)
    step_id = models.BigIntegerField(default=0)
    variant_id = models.BigIntegerField(default=0)
    provider_id = models.BigIntegerField(default=0)

    sent = models.PositiveIntegerField(default=0)
    # Refused by the recipient's server at send time (5.1.x/5.7.x to RCPT or DATA): attempts
    # that never became ``sent``; bounce rates are over sent + refused.
    refused = models.PositiveIntegerField(default=0)
    # Permanent failures at send time (including synchronous hard bounces and blocks).
    failed = models.PositiveIntegerField(default=0)
    # Transient send errors (retried later).
    transient = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    bounced_hard = models.PositiveIntegerField(default=0)
    bounced_soft = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    complained = models.PositiveIntegerField(default=0)
    unsubscribed = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    clicked = models.PositiveIntegerField(default=0)
    replied = models.PositiveIntegerField(default=0)
    auto_replied = models.PositiveIntegerField(default=0)
    blocked = models.PositiveIntegerField(default=0)
    # Of opened/clicked: the visits tracking estimated to be a person (docs/tracking.md).
    opened_human = models.PositiveIntegerField(default=0)
    clicked_human = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "day",
                    "mailbox_id",
                    "campaign_id",
                    "step_id",
                    "variant_id",
                    "provider_id",
                ],
                name="daily_rollup_unique",
            )
        ]
        indexes = [
            models.Index(fields=["mailbox_id", "day"], name="rollup_mailbox_day_idx"),
            models.Index(fields=["domain_id", "day"], name="rollup_domain_day_idx"),
            # The pool's figures over a window of days, per mailbox or per day (the overview,
            # its 30/90-day trends), answered from the index alone.
            models.Index(
                fields=[
                    "day",
                    "mailbox_id",
                    "sent",
                    "delivered",
                    "replied",
                    "bounced_hard",
                    "complained",
                ],
                name="rollup_day_outcomes_idx",
            ),
            # The campaign page's opens and clicks per step and variant, answered from the
            # index alone (a year of a busy campaign is ~100,000 rows).
            models.Index(
                fields=[
                    "campaign_id",
                    "step_id",
                    "variant_id",
                    "opened",
                    "opened_human",
                    "clicked",
                    "clicked_human",
                ],
                name="rollup_campaign_engagement_idx",
            ),
            # The campaign list's replies and bounces per campaign, the campaign page's per
            # step and variant and its funnel, answered from the index alone.
            models.Index(
                fields=[
                    "campaign_id",
                    "step_id",
                    "variant_id",
                    "sent",
                    "delivered",
                    "replied",
                    "bounced_hard",
                ],
                name="rollup_campaign_outcomes_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"rollup {self.day} mailbox {self.mailbox_id} campaign {self.campaign_id}"
