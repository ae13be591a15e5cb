from django.contrib import admin

from outreach.lib.admin import ReadOnlyAdmin
from outreach.metrics.models import DailyRollup


@admin.register(DailyRollup)
class DailyRollupAdmin(ReadOnlyAdmin):
    list_display = ["day", "mailbox_id", "campaign_id", "sent", "bounced_hard", "complained"]
    list_filter = ["day"]
