from django.contrib import admin

from outreach.events.models import DeadLetter, Event, InboxCursor, RefusedWebhook, SeedCursor
from outreach.lib.admin import ReadOnlyAdmin


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = ["occurred_at", "type", "bounce_type", "recipient", "source", "unmatched"]
    list_filter = ["type", "source", "unmatched"]
    search_fields = ["recipient", "provider_message_id"]
    raw_id_fields = ["message"]


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin[DeadLetter]):
    list_display = ["received_at", "endpoint", "status_code", "error", "replayed_at"]


@admin.register(RefusedWebhook)
class RefusedWebhookAdmin(ReadOnlyAdmin):
    """Webhook requests refused for their credentials or signature, counted (never kept)."""

    list_display = ["window", "endpoint", "status_code", "count", "last_error"]
    list_filter = ["status_code", "endpoint"]


@admin.register(InboxCursor)
class InboxCursorAdmin(admin.ModelAdmin[InboxCursor]):
    list_display = ["mailbox", "folder", "uid_validity", "last_uid", "checked_at", "last_error"]
    raw_id_fields = ["mailbox"]


@admin.register(SeedCursor)
class SeedCursorAdmin(admin.ModelAdmin[SeedCursor]):
    list_display = ["address", "folder", "uid_validity", "last_uid", "checked_at", "last_error"]
