from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "outreach.events"
    label = "events"

    def ready(self) -> None:
        from outreach.events import counts
        from outreach.events.outgoing import connect_signals
        from outreach.scheduler import evidence

        connect_signals()
        # The scheduler reads these counts without importing the events layer.
        evidence.register(outcome_counts=counts.outcome_counts, day_outcomes=counts.day_outcomes)
