from django.urls import path

from outreach.dashboard import (
    alert_pages,
    cockpit,
    inbox,
    plan_page,
    suppression_pages,
    views,
    webhooks,
)

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("messages/<int:pk>/resolve", views.resolve_unknown, name="resolve_unknown"),
    path("mailboxes/", views.mailbox_list, name="mailboxes"),
    path("mailboxes/<int:pk>/", views.mailbox_detail, name="mailbox"),
    path("mailboxes/<int:pk>/action", views.mailbox_action, name="mailbox_action"),
    path("mailboxes/bulk", cockpit.mailbox_bulk, name="mailbox_bulk"),
    path("domains/", views.domain_list, name="domains"),
    path("campaigns/", views.campaign_list, name="campaigns"),
    path("campaigns/<slug:slug>/", views.campaign_detail, name="campaign"),
    path("campaigns/<slug:slug>/state", views.campaign_state, name="campaign_state"),
    path("events/", views.event_list, name="events"),
    path("audit/", views.audit_log, name="audit"),
    path("suppression/", suppression_pages.suppression_list, name="suppression"),
    path("suppression/add", suppression_pages.suppression_add, name="suppression_add"),
    path(
        "suppression/<int:pk>/remove",
        suppression_pages.suppression_remove,
        name="suppression_remove",
    ),
    path("suppression.csv", suppression_pages.suppression_export, name="suppression_export"),
    path("plan/", plan_page.capacity_plan, name="plan"),
    path("alerts/", alert_pages.alert_list, name="alerts"),
    path("alerts/ack", alert_pages.alert_ack_many, name="alert_ack_many"),
    path("alerts/<int:pk>/ack", alert_pages.alert_ack, name="alert_ack"),
    path("leads/import", views.lead_import_form, name="lead_import_form"),
    path("leads/import/upload", views.lead_import, name="lead_import"),
    path("inbox/", inbox.inbox, name="inbox"),
    path("inbox/<int:pk>/", inbox.thread, name="inbox_thread"),
    path("inbox/<int:pk>/label", inbox.relabel_view, name="inbox_relabel"),
    path("inbox/<int:pk>/done", inbox.done_view, name="inbox_done"),
    path("inbox/<int:pk>/snooze", inbox.snooze_view, name="inbox_snooze"),
    path("inbox/<int:pk>/answer", inbox.answer_view, name="inbox_answer"),
    path("webhooks/", webhooks.webhook_status, name="webhooks"),
    path("webhooks/<int:pk>/retry", webhooks.webhook_retry, name="webhook_retry"),
]
