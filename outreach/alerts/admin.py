from django.contrib import admin

from outreach.alerts.models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "severity", "kind", "text", "state"]
    list_filter = ["severity", "state", "kind"]
