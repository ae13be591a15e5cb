from django.contrib import admin

from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, StateChange


@admin.register(PoolSettings)
class PoolSettingsAdmin(admin.ModelAdmin):
    list_display = ["timezone", "updated_at"]


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "standby", "price_per_1000", "enabled"]
    list_filter = ["kind", "enabled"]


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "provider", "daily_cap", "cooldown_until"]
    list_filter = ["state"]
    search_fields = ["name"]


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = [
        "address",
        "domain",
        "state",
        "auth_failed_at",
        "daily_cap",
        "warmup_started_on",
        "last_sent_at",
    ]
    list_filter = ["state", "domain"]
    search_fields = ["address"]
    list_select_related = ["domain"]


@admin.register(StateChange)
class StateChangeAdmin(admin.ModelAdmin):
    list_display = ["at", "mailbox", "domain", "from_state", "to_state", "reason", "actor"]
    list_filter = ["to_state"]
    list_select_related = ["mailbox", "domain"]
