"""URLs of the events collector: provider webhooks and unsubscribe links."""

from django.urls import path

from outreach.events import tracking_views, views
from outreach.events.webhooks import webhook_view

app_name = "events"
urlpatterns = [
    path("webhooks/amazon_ses/tracking/", webhook_view("amazon_ses"), name="amazon_ses_tracking"),
    path("webhooks/mailgun/tracking/", webhook_view("mailgun"), name="mailgun_tracking"),
    path("webhooks/postmark/tracking/", webhook_view("postmark"), name="postmark_tracking"),
    path("webhooks/sendgrid/tracking/", webhook_view("sendgrid"), name="sendgrid_tracking"),
    path("u/<str:token>", views.unsubscribe, name="unsubscribe"),
    path("o/<str:token>", tracking_views.pixel, name="tracking_open"),
    path("c/<str:token>", tracking_views.click, name="tracking_click"),
    path("tracking/tls-ask", tracking_views.tls_ask, name="tracking_tls_ask"),
]
