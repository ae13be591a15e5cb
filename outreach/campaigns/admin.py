from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from outreach.campaigns import lifecycle
from outreach.campaigns.models import (
    Campaign,
    Enrollment,
    Lead,
    Message,
    Step,
    Suppression,
    Variant,
)


class VariantInline(admin.StackedInline[Variant, Step]):
    model = Variant
    extra = 0


@admin.register(Step)
class StepAdmin(admin.ModelAdmin[Step]):
    list_display = ["campaign", "position", "delay_days", "delay_hours"]
    inlines = [VariantInline]


class StepInline(admin.TabularInline[Step, Campaign]):
    model = Step
    extra = 0
    show_change_link = True


def _lifecycle_action(
    name: str, move: Callable[[Campaign, str], object]
) -> Callable[[admin.ModelAdmin[Campaign], HttpRequest, QuerySet[Campaign]], None]:
    """An admin action running ``move`` (start, pause...) on each selected campaign."""

    def action(
        modeladmin: admin.ModelAdmin[Campaign], request: HttpRequest, queryset: QuerySet[Campaign]
    ) -> None:
        for campaign in queryset:
            try:
                move(campaign, f"user:{request.user.get_username()}")
            except lifecycle.CampaignInvalid as exc:
                problems = "; ".join(exc.problems[:5])
                modeladmin.message_user(
                    request, f"{campaign.slug}: not valid: {problems}", messages.ERROR
                )
            except lifecycle.CampaignError as exc:
                modeladmin.message_user(request, str(exc), messages.ERROR)
            else:
                modeladmin.message_user(request, f"{campaign.slug}: {campaign.state}")

    action.__name__ = f"{name}_campaigns"
    return admin.action(description=f"{name.capitalize()} selected campaigns")(action)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin[Campaign]):
    """Campaign settings. State changes only through the actions (they validate first)."""

    list_display = ["slug", "name", "state", "daily_cap", "timezone"]
    list_filter = ["state"]
    readonly_fields = ["state", "started_at", "created_at"]
    filter_horizontal = ["allowed_domains", "allowed_mailboxes"]
    inlines = [StepInline]
    actions = [
        _lifecycle_action("start", lifecycle.start),
        _lifecycle_action("pause", lifecycle.pause),
        _lifecycle_action("resume", lifecycle.resume),
        _lifecycle_action("stop", lifecycle.stop),
    ]


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin[Lead]):
    list_display = ["email", "first_name", "last_name", "company", "timezone"]
    search_fields = ["email", "company"]


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin[Enrollment]):
    list_display = ["lead", "campaign", "state", "stop_reason", "last_step", "next_due_at"]
    list_filter = ["state", "campaign"]
    list_select_related = ["lead", "campaign"]
    raw_id_fields = ["lead", "thread_mailbox"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ["id", "to_email", "state", "mailbox", "not_before", "sent_at"]
    list_filter = ["state", "kind"]
    search_fields = ["to_email", "message_id_header", "provider_message_id"]
    list_select_related = ["mailbox"]
    raw_id_fields = ["enrollment", "mailbox", "pinned_mailbox"]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin[Suppression]):
    list_display = ["value", "kind", "source", "reason", "created_at"]
    list_filter = ["kind", "source"]
    search_fields = ["value"]
