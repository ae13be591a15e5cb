"""The routing pass: every due message that fits is given a mailbox and claimed.

The pool, the campaigns and today's counters are read once; the in-memory
:class:`~outreach.scheduler.routing.PoolRouter` proposes a mailbox per message and the claims
are made in groups (:func:`~outreach.scheduler.claim.claim_batch`); the database has the last
word on every cap.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, OuterRef, Q, Subquery

from outreach.campaigns.models import Campaign, Enrollment, Message
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, cap_on
from outreach.pool.policy import SENDING_STATES, Limits
from outreach.scheduler import evidence, routing
from outreach.scheduler.claim import ClaimOutcome, Proposal, claim_batch, worker_name
from outreach.scheduler.counters import (
    GLOBAL_KEY,
    Scope,
    ensure_counters,
    pool_day,
    reservation_for,
)
from outreach.scheduler.models import DailyCounter, RecipientDomain
from outreach.scheduler.recipients import CLASSES, providers_of

NO_EVIDENCE = evidence.MailboxRates()
# How many due messages one query fetches; a pass reads batch after batch.
BATCH = 200
# Claims committed together (claim_batch). Each claim is still all-or-nothing (its own
# savepoint, or exception block in PostgreSQL's claim function), but one round trip and one
# commit (a disk flush on PostgreSQL) serve them all.
CLAIMS_PER_TRANSACTION = 50
# Due messages are read in this order; pinned ones mailbox by mailbox (see _drain_pinned).
DUE_ORDER = ("not_before", "pk")
PINNED_ORDER = ("pinned_mailbox_id", "not_before", "pk")
# How many mailboxes one message is offered to in a pass before it waits for the next one.
ATTEMPTS = 5


@dataclass(frozen=True)
class CampaignRules:
    id: int
    allowed: frozenset[int] | None  # None: every mailbox of the pool
    allow_warming: bool
    cap: int | None
    window: routing.Window
    timezone: str


@dataclass
class ClaimReport:
    claimed: int = 0
    deferred: int = 0  # outside their window: not_before moved to the next opening
    refused: int = 0  # a claim the database refused (stale view, another process, full cap)
    load_seconds: float = 0.0  # reading the pool, campaigns and counters at the pass's start
    by_mailbox: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _MailboxRow:
    """What routing reads of a mailbox (a pool of thousands is read every pass): plain
    values, no model instance; the cap fields are what :func:`outreach.pool.models.cap_on`
    reads of a mailbox."""

    id: int
    domain_id: int
    state: str
    daily_cap: int | None
    warmup_started_on: date | None
    warmup_start_day: int
    next_send_at: datetime | None
    pacing_gap_seconds: int | None
    provider_id: int | None


_MAILBOX_FIELDS = tuple(f.name for f in fields(_MailboxRow))


@dataclass(frozen=True)
class _Proposed:
    """A proposal the pass made and holds in memory until the database answers."""

    row: dict[str, Any]
    attempt: int
    campaign: CampaignRules | None  # the campaign whose cap it counts against, if any
    paced_until: datetime | None  # the mailbox's pacing slot before the hold
    proposal: Proposal


@dataclass
class _MailboxInfo:
    domain_id: int
    provider_account_id: int
    cap: int
    domain_cap: int
    gap: int | None


class _Pass:
    """The state of one routing pass: the pool read once, then claims until nothing fits."""

    def __init__(self, now: datetime, worker: str, rng: random.Random, limit: int | None):
        started = time.perf_counter()
        self.now = now
        self.worker = worker
        self.rng = rng
        self.pool = PoolSettings.load()
        self.limits = self.pool.limits
        self.thresholds = self.pool.thresholds
        self.day = pool_day(now, self.pool)
        self.lease = timedelta(seconds=self.limits.claim_lease_seconds)
        self.report = ClaimReport()
        self.info: dict[int, _MailboxInfo] = {}
        self.existing: set[tuple[str, str]] = set()
        self.router = routing.PoolRouter(self._load_pool(), now, self.thresholds)
        self.campaigns = self._load_campaigns()
        used = self._used(Scope.CAMPAIGN)
        global_used = self._used(Scope.GLOBAL).get(GLOBAL_KEY, 0)
        ensure_counters(self.day, self._pool_keys())
        self.campaign_left: dict[int, int | None] = {
            c.id: None if c.cap is None else c.cap - used.get(str(c.id), 0)
            for c in self.campaigns.values()
        }
        self.global_left = self.limits.global_daily_cap - global_used
        if limit is not None:
            # The pass stops when either runs out; the database still checks the real cap.
            self.global_left = min(self.global_left, limit)
        self.full_recipient_domains: set[str] = set()
        self.known_recipient_domains: set[str] = set()
        # Recipient domain -> its mail provider, read when routing looks at them at all.
        self.by_provider = self.limits.prefer_same_provider or bool(
            self.limits.recipient_provider_hourly_cap
        )
        self.recipient_providers: dict[str, str] = {}
        if self.limits.recipient_provider_hourly_cap:
            self.router.recipient_provider_left = _recipient_provider_left(now, self.limits)
        self.cursors: dict[int, tuple[Any, ...]] = {}
        # Whether each (campaign, lead time zone) is in its window at ``now``: None when it
        # is, else the opening its messages wait for (the same for the whole pass).
        self.openings: dict[tuple[int, str], datetime | None] = {}
        # The (campaign, lead time zone) groups whose window is closed and whose due messages
        # are not moved yet, by opening; and those already moved in this pass.
        self.deferrals: dict[datetime, set[tuple[int, str]]] = {}
        self.deferred_groups: set[tuple[int, str]] = set()
        self.report.load_seconds = time.perf_counter() - started

    def _used(self, scope: str) -> dict[str, int]:
        used = dict(
            DailyCounter.objects.filter(day=self.day, scope=scope).values_list("key", "used")
        )
        self.existing.update((scope, key) for key in used)
        return used

    def _pool_keys(self) -> list[tuple[str, str]]:
        """Today's counter rows of the pool that do not exist yet (usually none after the
        day's first pass)."""
        keys: list[tuple[str, str]] = [(Scope.GLOBAL, GLOBAL_KEY)]
        for mailbox_id, info in self.info.items():
            keys += [(Scope.MAILBOX, str(mailbox_id)), (Scope.DOMAIN, str(info.domain_id))]
        keys += [(Scope.CAMPAIGN, str(c)) for c in self.campaigns]
        return [k for k in keys if k not in self.existing]

    def _load_pool(self) -> list[routing.MailboxView]:
        mailbox_used = self._used(Scope.MAILBOX)
        domain_used = self._used(Scope.DOMAIN)
        stats = evidence.mailbox_rates(self.now, self.thresholds)
        blocked = _dns_blocked_domain_ids()
        kinds = dict(
            ProviderAccount.objects.filter(kind__in=MAILBOX_PROVIDERS).values_list("pk", "kind")
        )
        views = []
        warmup = self.pool.warmup
        # Plain rows, as the mailboxes below: a pool of thousands is read every pass.
        domains = {
            pk: (Domain.cap_of(daily_cap, self.limits), provider_id)
            for pk, daily_cap, provider_id in Domain.objects.filter(
                state=Domain.State.ACTIVE
            ).values_list("pk", "daily_cap", "provider_id")
        }
        mailboxes = Mailbox.objects.filter(
            state__in=SENDING_STATES, domain__state=Domain.State.ACTIVE
        ).values_list(*_MAILBOX_FIELDS)
        for values in mailboxes:
            mb = _MailboxRow(*values)
            domain = domains.get(mb.domain_id)
            if domain is None:  # its domain stopped sending between the two reads
                continue
            domain_cap, domain_provider_id = domain
            cap = cap_on(mb, self.day, self.limits, warmup)
            self.info[mb.id] = _MailboxInfo(
                domain_id=mb.domain_id,
                provider_account_id=mb.provider_id or domain_provider_id,
                cap=cap,
                domain_cap=domain_cap,
                gap=mb.pacing_gap_seconds,
            )
            rates = stats.get(mb.id, NO_EVIDENCE)
            views.append(
                routing.MailboxView(
                    id=mb.id,
                    domain_id=mb.domain_id,
                    state=mb.state,
                    remaining=cap - mailbox_used.get(str(mb.id), 0),
                    domain_remaining=domain_cap - domain_used.get(str(mb.domain_id), 0),
                    next_send_at=mb.next_send_at,
                    domain_sendable=mb.domain_id not in blocked,
                    bounce_rate=rates.bounce_rate,
                    complaint_rate=rates.complaint_rate,
                    recent_spike=rates.recent_spike,
                    provider=kinds.get(self.info[mb.id].provider_account_id, ""),
                )
            )
        return views

    def _load_campaigns(self) -> dict[int, CampaignRules]:
        campaigns = Campaign.objects.filter(state=Campaign.State.ACTIVE).prefetch_related(
            "allowed_domains", "allowed_mailboxes"
        )
        rules = {}
        for c in campaigns:
            allowed: set[int] | None = None
            domain_ids = {d.pk for d in c.allowed_domains.all()}
            mailbox_ids = {m.pk for m in c.allowed_mailboxes.all()}
            if domain_ids or mailbox_ids:
                allowed = set(mailbox_ids)
                allowed |= {i for i, info in self.info.items() if info.domain_id in domain_ids}
            rules[c.pk] = CampaignRules(
                id=c.pk,
                allowed=None if allowed is None else frozenset(allowed),
                allow_warming=c.allow_warming_mailboxes,
                cap=c.daily_cap if c.daily_cap is not None else self.limits.campaign_daily_cap,
                window=routing.Window.of(c.window_days, c.window_start, c.window_end),
                timezone=c.timezone,
            )
        return rules

    # -- candidates --

    def _due(self) -> Any:
        # A message of a stopped enrollment (a reply came in) is never claimed, even when the
        # stop happened between its planning and now.
        return Message.objects.filter(
            Q(enrollment__isnull=True) | Q(enrollment__state=Enrollment.State.ACTIVE),
            state=Message.State.SCHEDULED,
            not_before__lte=self.now,
        )

    def _rows(
        self, query: Any, after: tuple[Any, ...] | None, order: tuple[str, ...] = DUE_ORDER
    ) -> list[dict[str, Any]]:
        """The next batch of due messages in ``order`` after the row whose ``order`` values
        are ``after`` (keyset pagination: rows this pass already looked at and left are not
        read again).

        The rows after ``after`` are read as the ranges the index holds them in, each one
        seek (:func:`_ranges_after`): a single condition "after" is an OR that no index can
        seek to, and a backlog due at one instant (one opening) was scanned from its start
        for every batch."""
        ranges: Sequence[Q | None] = [None] if after is None else _ranges_after(order, after)
        rows: list[dict[str, Any]] = []
        for condition in ranges:
            part = query if condition is None else query.filter(condition)
            rows += part.order_by(*order).values(
                "pk",
                "kind",
                "campaign_id",
                "to_domain",
                "not_before",
                "pinned_mailbox_id",
                "enrollment__lead__timezone",
            )[: BATCH - len(rows)]
            if len(rows) == BATCH:
                break
        self._ensure_recipient_counters(rows)
        if self.by_provider:
            new = {r["to_domain"] for r in rows} - self.recipient_providers.keys()
            self.recipient_providers.update(providers_of(new, now=self.now))
        return rows

    def run(self) -> ClaimReport:
        # Pinned messages first (follow-ups, warm-up): they can only go one way. Then the
        # campaigns in turn, one batch each, so a big backlog does not starve a small campaign.
        sendable = [i for i in self.router.mailboxes if self.router.can_send(i, allow_warming=True)]
        paced = [i for i in sendable if self._paced(i)]
        for chunk in _chunks(paced, BATCH):
            self._drain_paced(chunk)
        for chunk in _chunks([i for i in sendable if not self._paced(i)], 500):
            self._drain_pinned(chunk)
        # Most constrained first: a campaign restricted to a few mailboxes has nowhere else to
        # go, while an unrestricted one can use the rest of the pool.
        queues = sorted(
            self.campaigns.values(),
            key=lambda c: (c.allowed is None, len(c.allowed or ()), c.id),
        )
        while queues and self.global_left > 0:
            queues = [c for c in queues if self._campaign_batch(c)]
        return self.report

    def _paced(self, mailbox_id: int) -> bool:
        """Whether a claim moves the mailbox's pacing slot past ``now``: then it takes one
        message in this pass."""
        return routing.base_gap(self.limits, self.info[mailbox_id].gap) > 0

    def _drain_paced(self, mailbox_ids: list[int]) -> None:
        """The due messages pinned to paced ``mailbox_ids`` (at most :data:`BATCH`).

        A paced mailbox takes one message a pass, so each is read its oldest due message
        only (one query for all, a seek per mailbox), not its whole backlog of follow-ups.
        A mailbox whose message was not claimed and which could still take one (the message
        waits for its window, its campaign's cap, ...) is read its next one, round after
        round (bounded, as a pass's reads are).
        """
        skipped: list[int] = []
        waiting = mailbox_ids
        for _round in range(50):
            oldest = (
                self._due()
                .filter(pinned_mailbox_id=OuterRef("pk"))
                .exclude(pk__in=skipped)
                .order_by("not_before", "pk")
                .values("pk")[:1]
            )
            heads = Mailbox.objects.filter(pk__in=waiting).values(first=Subquery(oldest))
            rows = self._rows(Message.objects.filter(pk__in=heads), None, PINNED_ORDER)
            self._claim_rows(rows)
            if self.global_left <= 0:
                return
            left = [
                row
                for row in rows
                if self.router.can_send(row["pinned_mailbox_id"], allow_warming=True)
            ]
            if not left:
                return
            skipped += [row["pk"] for row in left]
            waiting = [row["pinned_mailbox_id"] for row in left]

    def _drain_pinned(self, mailbox_ids: list[int]) -> None:
        """The due messages pinned to unpaced ``mailbox_ids`` (a mailbox may take several in
        a pass), mailbox by mailbox (the order the pinned index reads them in), oldest first
        within a mailbox."""
        query = self._due().filter(pinned_mailbox_id__in=mailbox_ids)
        after: tuple[Any, ...] | None = None
        for _batch in range(50):  # bounds the work of one pass
            rows = self._rows(query, after, PINNED_ORDER)
            self._claim_rows(rows)
            if len(rows) < BATCH or self.global_left <= 0:
                return
            after = tuple(rows[-1][f] for f in PINNED_ORDER)

    def _campaign_batch(self, campaign: CampaignRules) -> bool:
        """Claim one batch of the campaign's unpinned due messages; False when it is done
        for this pass (nothing more due, no mailbox left for it, or its cap is full)."""
        if not self._campaign_open(campaign):
            return False
        if self.router.choose(campaign.allowed, allow_warming=campaign.allow_warming) is None:
            return False
        query = self._due().filter(campaign_id=campaign.id, pinned_mailbox__isnull=True)
        rows = self._rows(query, self.cursors.get(campaign.id))
        self._claim_rows(rows)
        if len(rows) < BATCH or not self._campaign_open(campaign) or self.global_left <= 0:
            return False
        self.cursors[campaign.id] = tuple(rows[-1][f] for f in DUE_ORDER)
        return True

    def _campaign_open(self, campaign: CampaignRules) -> bool:
        left = self.campaign_left.get(campaign.id)
        return left is None or left > 0

    def _claim_rows(self, rows: list[dict[str, Any]]) -> None:
        """Route and claim ``rows``, :data:`CLAIMS_PER_TRANSACTION` at a time.

        Each group is proposed in full first (the router reserving in memory as it goes, so
        the group spreads over the pool as one-by-one claims would), then claimed in one
        :func:`claim_batch`. A refused claim is learned from and its message proposed again,
        to another mailbox, in the next group (up to :data:`ATTEMPTS` times).
        """
        pending = [(row, 0) for row in rows]
        while pending and self.global_left > 0:
            group = pending[:CLAIMS_PER_TRANSACTION]
            pending = self._claim_group(group) + pending[CLAIMS_PER_TRANSACTION:]
        self._write_deferrals()

    def _claim_group(
        self, group: list[tuple[dict[str, Any], int]]
    ) -> list[tuple[dict[str, Any], int]]:
        """Propose and claim one group; returns the rows worth another attempt."""
        proposed: list[_Proposed] = []
        for row, attempt in group:
            if self.global_left <= 0:
                break
            item = self._propose(row, attempt)
            if item is not None:
                proposed.append(item)
        outcomes = claim_batch(
            [item.proposal for item in proposed],
            day=self.day,
            now=self.now,
            lease=self.lease,
            worker=self.worker,
        )
        again = []
        for item, outcome in zip(proposed, outcomes, strict=True):
            if outcome.claimed:
                mailbox_id = item.proposal.mailbox_id
                self.report.claimed += 1
                self.report.by_mailbox[mailbox_id] = self.report.by_mailbox.get(mailbox_id, 0) + 1
                continue
            self._give_back(item)
            if outcome.reason == "gone":
                continue
            self.report.refused += 1
            self._learn(outcome, item.proposal.mailbox_id, item.campaign, item.row["to_domain"])
            final = outcome.scope in (Scope.GLOBAL, Scope.CAMPAIGN, Scope.RECIPIENT_DOMAIN)
            if not final and item.attempt + 1 < ATTEMPTS:
                again.append((item.row, item.attempt + 1))
        return again

    def _propose(self, row: dict[str, Any], attempt: int) -> _Proposed | None:
        """Choose a mailbox for ``row`` and hold its units in memory (None: not now)."""
        campaign = self.campaigns.get(row["campaign_id"]) if row["campaign_id"] else None
        is_campaign = row["kind"] == Message.Kind.CAMPAIGN
        if is_campaign:
            if campaign is None or not self._campaign_open(campaign):
                return None
            if attempt == 0 and self._defer_outside_window(row, campaign):
                return None
            if row["to_domain"] in self.full_recipient_domains:
                return None
        allow_warming = not is_campaign or (campaign is not None and campaign.allow_warming)
        recipient_provider = self.recipient_providers.get(row["to_domain"], "")
        mailbox_id = self._mailbox_for(row, campaign, recipient_provider, allow_warming)
        if mailbox_id is None:
            return None
        info = self.info[mailbox_id]
        counts_for_campaign = campaign is not None and is_campaign
        reservation = reservation_for(
            kind=row["kind"],
            mailbox_id=mailbox_id,
            domain_id=info.domain_id,
            mailbox_cap=info.cap,
            domain_cap=info.domain_cap,
            limits=self.limits,
            campaign_id=row["campaign_id"],
            campaign_cap=campaign.cap if campaign else None,
            to_domain=row["to_domain"],
        )
        next_send_at = self.now + routing.pacing_gap(self.limits, self.rng, mailbox_gap=info.gap)
        item = _Proposed(
            row=row,
            attempt=attempt,
            campaign=campaign if counts_for_campaign else None,
            paced_until=self.router.mailboxes[mailbox_id].next_send_at,
            proposal=Proposal(
                message_id=row["pk"],
                mailbox_id=mailbox_id,
                provider_account_id=info.provider_account_id,
                reservation=reservation,
                next_send_at=next_send_at,
            ),
        )
        # Held in memory until the database answers, so the rest of the group sees it.
        self.router.used(mailbox_id, next_send_at)
        self.router.recipient_provider_used(recipient_provider)
        self.global_left -= 1
        if item.campaign is not None:
            left = self.campaign_left.get(item.campaign.id)
            if left is not None:
                self.campaign_left[item.campaign.id] = left - 1
        return item

    def _mailbox_for(
        self,
        row: dict[str, Any],
        campaign: CampaignRules | None,
        recipient_provider: str,
        allow_warming: bool,
    ) -> int | None:
        """The message's pinned mailbox if it may send now, else the router's best choice
        (None: no mailbox for it in this pass)."""
        pinned = row["pinned_mailbox_id"]
        if pinned is not None:
            if not self.router.can_send(pinned, allow_warming=allow_warming):
                return None
            if self.router.recipient_provider_left.get(recipient_provider, 1) <= 0:
                return None
            return int(pinned)
        assert campaign is not None
        choice = self.router.choose_for(
            campaign.allowed,
            recipient_provider,
            allow_warming=allow_warming,
            prefer_same_provider=self.limits.prefer_same_provider,
        )
        return None if choice is None else choice.id

    def _give_back(self, item: _Proposed) -> None:
        """Undo :meth:`_propose`'s in-memory hold of a claim the database refused."""
        self.router.unused(item.proposal.mailbox_id, item.paced_until)
        self.router.recipient_provider_used(
            self.recipient_providers.get(item.row["to_domain"], ""), -1
        )
        self.global_left += 1
        if item.campaign is not None:
            left = self.campaign_left.get(item.campaign.id)
            if left is not None:
                self.campaign_left[item.campaign.id] = left + 1

    def _learn(
        self, outcome: ClaimOutcome, mailbox_id: int, campaign: CampaignRules | None, to_domain: str
    ) -> None:
        """The database refused: bring the in-memory view in line with it."""
        if outcome.reason == "busy" or outcome.scope == Scope.MAILBOX:
            self.router.exhausted(mailbox_id)
        elif outcome.scope == Scope.DOMAIN:
            self.router.domain_exhausted(self.info[mailbox_id].domain_id)
        elif outcome.scope == Scope.GLOBAL:
            self.global_left = 0
        elif outcome.scope == Scope.CAMPAIGN and campaign is not None:
            self.campaign_left[campaign.id] = 0
        elif outcome.scope == Scope.RECIPIENT_DOMAIN:
            self.full_recipient_domains.add(to_domain)

    def _ensure_recipient_counters(self, rows: list[dict[str, Any]]) -> None:
        """Counter rows for the batch's company domains, in one INSERT for the batch."""
        new = {
            r["to_domain"] for r in rows if r["kind"] == Message.Kind.CAMPAIGN and r["to_domain"]
        } - self.known_recipient_domains
        if new:
            ensure_counters(self.day, [(Scope.RECIPIENT_DOMAIN, d) for d in new])
            self.known_recipient_domains |= new

    def _defer_outside_window(self, row: dict[str, Any], campaign: CampaignRules) -> bool:
        """A message whose window closed (or has not opened) waits for the next opening.

        The answer depends only on the campaign and the lead's time zone, so it is worked out
        once per pass for each pair; the group's due messages are moved together
        (:meth:`_write_deferrals`).
        """
        group = (campaign.id, row["enrollment__lead__timezone"] or "")
        if group not in self.openings:
            tz = routing.recipient_zone(group[1], campaign.timezone)
            opening = None
            if not routing.in_window(self.now, campaign.window, tz):
                opening = routing.next_window_start(self.now, campaign.window, tz)
            self.openings[group] = opening
        opening = self.openings[group]
        if opening is None:
            return False
        if group not in self.deferred_groups:
            self.deferrals.setdefault(opening, set()).add(group)
        return True

    def _write_deferrals(self) -> None:
        """Move every due message of the closed groups to its opening: one UPDATE per opening
        and campaign, for the group's messages this pass read and those it has not read yet
        (a backlog of due messages outside its window is moved in one statement, not read
        row by row). Conditional on ``scheduled`` and due: a message another process claimed
        meanwhile is left alone."""
        for opening, groups in self.deferrals.items():
            by_campaign: dict[int, set[str]] = {}
            for campaign_id, zone in groups:
                by_campaign.setdefault(campaign_id, set()).add(zone)
            for campaign_id, zones in by_campaign.items():
                of_zone = Q(enrollment__lead__timezone__in=zones)
                if "" in zones:  # the campaign's zone: also a message without a lead
                    of_zone |= Q(enrollment__isnull=True)
                self.report.deferred += (
                    self._due()
                    .filter(of_zone, campaign_id=campaign_id, kind=Message.Kind.CAMPAIGN)
                    .update(not_before=opening, updated_at=self.now)
                )
            self.deferred_groups |= groups
        self.deferrals.clear()


def claim_due(
    now: datetime,
    *,
    worker: str | None = None,
    rng: random.Random | None = None,
    limit: int | None = None,
) -> ClaimReport:
    """Route and claim every due message that fits at ``now`` (one pass), or at most
    ``limit`` of them.

    Reads the pool once (O(pool) queries: a constant number, whatever the pool size), then
    costs a few statements per claim. Several processes may run it at once on PostgreSQL: they
    compete only through the conditional UPDATEs.
    """
    return _Pass(now, worker or worker_name(), rng or random.Random(), limit).run()


# --- Helpers ---------------------------------------------------------------------------------


def _dns_blocked_domain_ids() -> set[int]:
    """Domains whose failing DNS check blocks sending (one query), when DNS checks exist."""
    try:
        from outreach.pool import dns
    except ImportError:
        return set()
    blocked = getattr(dns, "blocked_domain_ids", None)
    return set(blocked()) if callable(blocked) else set()


def _ranges_after(order: tuple[str, ...], values: tuple[Any, ...]) -> list[Q]:
    """The rows strictly after ``values`` in ``order`` (all ascending), as disjoint ranges in
    that order: the rows equal on all columns but the last and greater on it, then those
    equal on all but the last two and greater on the one before, ..., then those greater on
    the first. Each is an equality prefix and one bound: a seek in an index on ``order``."""
    ranges = []
    for i in range(len(order) - 1, -1, -1):
        equal = {name: value for name, value in zip(order[:i], values[:i], strict=True)}
        ranges.append(Q(**equal, **{f"{order[i]}__gt": values[i]}))
    return ranges


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Sending providers the router tells apart, to match a recipient's own provider.
MAILBOX_PROVIDERS = ("google", "microsoft")


def _recipient_provider_left(now: datetime, limits: Limits) -> dict[str, int]:
    """Messages each recipient provider may still take in the hour up to ``now``: the cap
    less what the pool sent or holds claimed for it in that hour. (A bound for each pass,
    not a counter reserved in the database like the daily caps.)"""
    cap = limits.recipient_provider_hourly_cap or 0
    recent = (
        Message.objects.filter(
            Q(sent_at__gt=now - timedelta(hours=1))
            | Q(state__in=[Message.State.CLAIMED, Message.State.SENDING])
        )
        .values("to_domain")
        .annotate(n=Count("pk"))
    )
    counts = {row["to_domain"]: row["n"] for row in recent}
    providers = dict(
        RecipientDomain.objects.filter(domain__in=counts).values_list("domain", "provider")
    )
    left = dict.fromkeys(CLASSES, cap)
    for domain, n in counts.items():
        provider = providers.get(domain)
        if provider in left:
            left[provider] -= n
    return left
