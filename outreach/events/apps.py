from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "outreach.events"
    label = "events"

    def ready(self) -> None:
        from outreach.events.outgoing import connect_signals

        connect_signals()
