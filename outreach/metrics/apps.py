from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "outreach.metrics"
    label = "metrics"
