from django.contrib import admin

from outreach.lib.admin import ReadOnlyAdmin, WriteOnlySecretsAdmin
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, StateChange


@admin.register(PoolSettings)
class PoolSettingsAdmin(admin.ModelAdmin[PoolSettings]):
    list_display = ["timezone", "updated_at"]


@admin.register(ProviderAccount)
class ProviderAccountAdmin(WriteOnlySecretsAdmin):
    list_display = ["name", "kind", "standby", "price_per_1000", "enabled"]
    list_filter = ["kind", "enabled"]


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin[Domain]):
    """States move only through the audited actions (dashboard, health rules)."""

    list_display = ["name", "state", "provider", "daily_cap", "cooldown_until"]
    readonly_fields = ["state", "cooldown_until"]
    list_filter = ["state"]
    search_fields = ["name"]


@admin.register(Mailbox)
class MailboxAdmin(WriteOnlySecretsAdmin):
    """States, warm-up progress and pacing move only through the audited actions."""

    list_display = [
        "address",
        "domain",
        "state",
        "auth_failed_at",
        "daily_cap",
        "warmup_started_on",
        "last_sent_at",
    ]
    readonly_fields = [
        "state",
        "auth_failed_at",
        "auth_error",
        "warmup_started_on",
        "warmup_start_day",
        "cooldown_until",
        "next_send_at",
        "last_sent_at",
        "consecutive_failures",
    ]
    list_filter = ["state", "domain"]
    search_fields = ["address"]
    list_select_related = ["domain"]


@admin.register(StateChange)
class StateChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "mailbox", "domain", "from_state", "to_state", "reason", "actor"]
    list_filter = ["to_state"]
    list_select_related = ["mailbox", "domain"]
