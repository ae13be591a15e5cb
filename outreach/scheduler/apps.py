from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "outreach.scheduler"
    label = "scheduler"
