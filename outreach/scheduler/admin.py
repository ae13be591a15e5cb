from django.contrib import admin

from outreach.scheduler.models import DailyCounter


@admin.register(DailyCounter)
class DailyCounterAdmin(admin.ModelAdmin):
    list_display = ["day", "scope", "key", "used"]
    list_filter = ["scope", "day"]
