from django.contrib import admin

from outreach.events.models import DeadLetter, Event, InboxCursor, SeedCursor


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "type", "bounce_type", "recipient", "source", "unmatched"]
    list_filter = ["type", "source", "unmatched"]
    search_fields = ["recipient", "provider_message_id"]
    raw_id_fields = ["message"]


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ["received_at", "endpoint", "status_code", "error", "replayed_at"]


@admin.register(InboxCursor)
class InboxCursorAdmin(admin.ModelAdmin):
    list_display = ["mailbox", "folder", "uid_validity", "last_uid", "checked_at", "last_error"]
    raw_id_fields = ["mailbox"]


@admin.register(SeedCursor)
class SeedCursorAdmin(admin.ModelAdmin):
    list_display = ["address", "folder", "uid_validity", "last_uid", "checked_at", "last_error"]
