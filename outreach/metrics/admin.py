from django.contrib import admin

from outreach.metrics.models import DailyRollup


@admin.register(DailyRollup)
class DailyRollupAdmin(admin.ModelAdmin):
    list_display = ["day", "mailbox_id", "campaign_id", "sent", "bounced_hard", "complained"]
    list_filter = ["day"]
