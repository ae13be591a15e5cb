from django.contrib import admin

from outreach.campaigns.models import (
    Campaign,
    Enrollment,
    Lead,
    Message,
    Step,
    Suppression,
    Variant,
)


class VariantInline(admin.StackedInline):
    model = Variant
    extra = 0


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ["campaign", "position", "delay_days", "delay_hours"]
    inlines = [VariantInline]


class StepInline(admin.TabularInline):
    model = Step
    extra = 0
    show_change_link = True


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "state", "daily_cap", "timezone"]
    list_filter = ["state"]
    inlines = [StepInline]


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = ["email", "first_name", "last_name", "company", "timezone"]
    search_fields = ["email", "company"]


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["lead", "campaign", "state", "stop_reason", "last_step", "next_due_at"]
    list_filter = ["state", "campaign"]
    list_select_related = ["lead", "campaign"]
    raw_id_fields = ["lead", "thread_mailbox"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "to_email", "state", "mailbox", "not_before", "sent_at"]
    list_filter = ["state", "kind"]
    search_fields = ["to_email", "message_id_header", "provider_message_id"]
    list_select_related = ["mailbox"]
    raw_id_fields = ["enrollment", "mailbox", "pinned_mailbox"]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["value", "kind", "source", "reason", "created_at"]
    list_filter = ["kind", "source"]
    search_fields = ["value"]
