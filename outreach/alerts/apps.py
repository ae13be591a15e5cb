from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "outreach.alerts"
    label = "alerts"
