"""Applying a parsed ``pool.toml`` to the database: settings, providers, domains, mailboxes.

This module owns the second stage of configuration as code: :func:`apply` compares a
:class:`~outreach.pool.config_spec.PoolSpec` with the database and writes the difference in one
transaction, reporting each change in a :class:`~outreach.pool.config_spec.Plan`. It never
deletes (what left the file is retired or disabled), sets a mailbox's state only when it
creates it, and stores secrets through :func:`resolve_secrets` (plain values encrypted, kept
as they were when unchanged).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import transaction

from outreach.lib import clock
from outreach.lib import secrets as secret_refs
from outreach.pool.config_spec import (
    CONNECTED_SECRETS,
    ConfigError,
    DomainSpec,
    MailboxSpec,
    Plan,
    PoolSpec,
    webhook_section,
)
from outreach.pool.models import (
    Domain,
    Mailbox,
    PoolSettings,
    ProviderAccount,
    StateChange,
)
from outreach.pool.states import transition_domain, transition_mailbox

ACTOR = "config:apply"


def apply(spec: PoolSpec, *, dry_run: bool = False) -> Plan:
    """Make the database match ``spec`` in one transaction; a dry run rolls it back."""
    plan = Plan()
    with transaction.atomic():
        _apply_settings(spec, plan)
        providers = _apply_providers(spec, plan)
        today = clock.today(spec.timezone)
        _apply_domains(spec, providers, today, plan)
        webhook_section().apply(spec.webhooks, plan)
        if dry_run:
            transaction.set_rollback(True)
    return plan


def diff(obj: Any, wanted: dict[str, Any]) -> list[str]:
    """Set ``wanted`` on ``obj``; the 'field: old → new' lines of what differed."""
    lines = []
    for name, value in wanted.items():
        old = getattr(obj, name)
        if old != value:
            lines.append(f"{name}: {_show(old)} → {_show(value)}")
            setattr(obj, name, value)
    return lines


def _show(value: Any) -> str:
    if isinstance(value, ProviderAccount):
        return value.name
    return "-" if value is None or value == "" else str(value)


def _apply_settings(spec: PoolSpec, plan: Plan) -> None:
    pool = PoolSettings.load()
    wanted = {
        "timezone": spec.timezone,
        "limits_json": spec.limits.to_dict(),
        "warmup_json": spec.warmup.to_dict(),
        "thresholds_json": spec.thresholds.to_dict(),
        "seed_addresses": [_stored_seed(seed, pool.seed_addresses) for seed in spec.seeds],
    }
    lines = diff(pool, wanted)
    if lines:
        pool.updated_at = clock.now()
        pool.save()
        for line in lines:
            plan.add(f"update pool settings: {line}")


def _stored_seed(seed: str | dict[str, Any], stored: Any) -> str | dict[str, Any]:
    """A seed as stored: its IMAP password encrypted (kept as it was when unchanged)."""
    if isinstance(seed, str):
        return seed
    old = next(
        (s for s in stored or [] if isinstance(s, dict) and s.get("address") == seed["address"]),
        {},
    )
    secret = {"imap_password": seed["imap_password"]}
    stored_secret = {"imap_password": str(old.get("imap_password", ""))}
    return {**seed, **resolve_secrets(secret, stored_secret)}


def resolve_secrets(wanted: dict[str, str], stored: dict[str, str]) -> dict[str, str]:
    """Secret refs to store: env refs as they are; plain values encrypted, unless unchanged."""
    result = {}
    for name, ref in wanted.items():
        if ref.startswith("plain:"):
            plain = ref.removeprefix("plain:")
            old = stored.get(name, "")
            try:
                unchanged = old.startswith("enc:") and secret_refs.resolve(old) == plain
            except secret_refs.SecretError:
                unchanged = False
            try:
                result[name] = old if unchanged else secret_refs.encrypt(plain)
            except secret_refs.SecretError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        else:
            result[name] = ref
    return result


def _apply_providers(spec: PoolSpec, plan: Plan) -> dict[str, ProviderAccount]:
    existing = {p.name: p for p in ProviderAccount.objects.all()}
    by_name: dict[str, ProviderAccount] = {}
    for ps in spec.providers:
        account = existing.get(ps.name)
        created = account is None
        if account is None:
            account = ProviderAccount(name=ps.name, kind=ps.kind)
        wanted = {
            "kind": ps.kind,
            "settings": ps.settings,
            "secrets": resolve_secrets(ps.secrets, account.secrets or {}),
            "price_per_1000": ps.price_per_1000,
            "max_send_rate": ps.max_send_rate,
            "enabled": True,
        }
        lines = diff(account, wanted)
        if created or lines:
            account.save()
        if created:
            plan.add(f"create provider {ps.name} ({ps.kind})")
        else:
            plan.changes.extend(f"update provider {ps.name}: {line}" for line in lines)
        by_name[ps.name] = account
    for ps in spec.providers:  # standby links, once every account exists
        account = by_name[ps.name]
        standby = by_name[ps.standby] if ps.standby else None
        if account.standby_id != (standby.pk if standby else None):
            plan.add(f"update provider {ps.name}: standby → {_show(standby)}")
            account.standby = standby
            account.save(update_fields=["standby"])
    for name, account in existing.items():
        if name not in by_name and account.enabled:
            account.enabled = False
            account.save(update_fields=["enabled"])
            plan.add(f"disable provider {name} (not in the file)")
    return by_name


def _apply_domains(
    spec: PoolSpec, providers: dict[str, ProviderAccount], today: date, plan: Plan
) -> None:
    domains = {d.name: d for d in Domain.objects.all()}
    mailboxes = {m.address: m for m in Mailbox.objects.select_related("domain")}
    wanted_addresses: set[str] = set()
    for ds in spec.domains:
        domain = _apply_domain(ds, domains.get(ds.name), providers, plan)
        for ms in ds.mailboxes:
            wanted_addresses.add(ms.address)
            _apply_mailbox(ms, domain, providers, mailboxes.get(ms.address), today, plan)
    _retire_missing(spec, domains, mailboxes, wanted_addresses, plan)


def _apply_domain(
    ds: DomainSpec, domain: Domain | None, providers: dict[str, ProviderAccount], plan: Plan
) -> Domain:
    """Create or update one domain of the file; a retired one is back in the pool."""
    created = domain is None
    if domain is None:
        domain = Domain(name=ds.name, provider=providers[ds.provider])
    lines = diff(
        domain,
        {
            "provider": providers[ds.provider],
            "daily_cap": ds.daily_cap,
            "yearly_price": ds.yearly_price,
            "dkim_selector": ds.dkim_selector,
            "mail_from": ds.mail_from,
            "tracking_host": ds.tracking_host,
        },
    )
    if created or lines:
        domain.save()
    if created:
        plan.add(f"create domain {ds.name}")
    else:
        plan.changes.extend(f"update domain {ds.name}: {line}" for line in lines)
    if domain.state == Domain.State.RETIRED:
        Domain.objects.filter(pk=domain.pk).update(state=Domain.State.ACTIVE)
        StateChange.objects.create(
            domain=domain,
            from_state=Domain.State.RETIRED,
            to_state=Domain.State.ACTIVE,
            reason="back in the configuration file",
            actor=ACTOR,
        )
        plan.add(f"reinstate domain {ds.name}")
    return domain


def _retire_missing(
    spec: PoolSpec,
    domains: dict[str, Domain],
    mailboxes: dict[str, Mailbox],
    wanted_addresses: set[str],
    plan: Plan,
) -> None:
    """Retire the mailboxes and domains the file no longer names (nothing is deleted)."""
    for address, mailbox in mailboxes.items():
        if address not in wanted_addresses and mailbox.state != Mailbox.State.RETIRED:
            transition_mailbox(
                mailbox,
                Mailbox.State.RETIRED,
                reason="removed from the configuration file",
                actor=ACTOR,
            )
            plan.add(f"retire mailbox {address} (not in the file)")
    wanted_domains = {d.name for d in spec.domains}
    for name, domain in domains.items():
        if name not in wanted_domains and domain.state != Domain.State.RETIRED:
            transition_domain(
                domain,
                Domain.State.RETIRED,
                reason="removed from the configuration file",
                actor=ACTOR,
            )
            plan.add(f"retire domain {name} (not in the file)")


def _apply_mailbox(
    ms: MailboxSpec,
    domain: Domain,
    providers: dict[str, ProviderAccount],
    mailbox: Mailbox | None,
    today: date,
    plan: Plan,
) -> None:
    created = mailbox is None
    if mailbox is None:
        mailbox = Mailbox(address=ms.address, domain=domain, state=ms.state)
        if ms.state == Mailbox.State.WARMING:
            mailbox.warmup_started_on = today
    lines = diff(mailbox, _wanted_mailbox(ms, domain, providers, mailbox))
    if created:
        mailbox.save()
        StateChange.objects.create(
            mailbox=mailbox,
            domain=domain,
            from_state="",
            to_state=ms.state,
            reason="declared in the configuration file",
            actor=ACTOR,
        )
        plan.add(f"create mailbox {ms.address} ({ms.state})")
        return
    if lines:
        mailbox.save()
        plan.changes.extend(f"update mailbox {ms.address}: {line}" for line in lines)
    if mailbox.state == Mailbox.State.RETIRED:
        _reinstate_mailbox(mailbox, domain, today, plan)


def _wanted_mailbox(
    ms: MailboxSpec, domain: Domain, providers: dict[str, ProviderAccount], mailbox: Mailbox
) -> dict[str, Any]:
    """The mailbox's fields as the file wants them; secrets a connect stored are kept."""
    stored = mailbox.secrets or {}
    return {
        "domain": domain,
        "display_name": ms.display_name,
        "reply_to": ms.reply_to,
        "daily_cap": ms.daily_cap,
        "provider": providers[ms.provider] if ms.provider else None,
        "settings": ms.settings,
        "secrets": {
            **resolve_secrets(ms.secrets, stored),
            **{
                name: ref
                for name, ref in stored.items()
                if name in CONNECTED_SECRETS and name not in ms.secrets
            },
        },
    }


def _reinstate_mailbox(mailbox: Mailbox, domain: Domain, today: date, plan: Plan) -> None:
    """Put back in the file: it re-enters the pool through warm-up, never straight to active."""
    Mailbox.objects.filter(pk=mailbox.pk).update(
        state=Mailbox.State.WARMING, warmup_started_on=today, warmup_start_day=1
    )
    StateChange.objects.create(
        mailbox=mailbox,
        domain=domain,
        from_state=Mailbox.State.RETIRED,
        to_state=Mailbox.State.WARMING,
        reason="back in the configuration file",
        actor=ACTOR,
    )
    plan.add(f"reinstate mailbox {mailbox.address} (warming)")
