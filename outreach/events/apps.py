from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "outreach.events"
    label = "events"
