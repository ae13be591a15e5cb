from django.contrib import admin

from outreach.lib.admin import ReadOnlyAdmin
from outreach.sending.models import SendAttempt


@admin.register(SendAttempt)
class SendAttemptAdmin(ReadOnlyAdmin):
    list_display = ["at", "message", "mailbox", "provider_account", "outcome", "code"]
    list_filter = ["outcome"]
    raw_id_fields = ["message"]
