from django.contrib import admin

from outreach.lib.admin import ReadOnlyAdmin
from outreach.scheduler.models import DailyCounter


@admin.register(DailyCounter)
class DailyCounterAdmin(ReadOnlyAdmin):
    list_display = ["day", "scope", "key", "used"]
    list_filter = ["scope", "day"]
