from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "outreach.dashboard"
    label = "dashboard"
