from django.contrib import admin

from outreach.alerts.models import Alert, ProviderHealth


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin[Alert]):
    list_display = ["created_at", "severity", "kind", "text", "state"]
    list_filter = ["severity", "state", "kind"]


@admin.register(ProviderHealth)
class ProviderHealthAdmin(admin.ModelAdmin[ProviderHealth]):
    list_display = ["provider_account", "healthy", "problems", "checked_at"]
