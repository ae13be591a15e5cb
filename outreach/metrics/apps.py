from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "outreach.metrics"
    label = "metrics"

    def ready(self) -> None:
        # Connected before the health rules (alerts app, later in INSTALLED_APPS): the rules
        # read the rollups these receivers have just updated.
        from outreach.events.signals import events_recorded
        from outreach.metrics import rates, receivers
        from outreach.scheduler import evidence
        from outreach.sending.signals import send_attempted

        events_recorded.connect(receivers.on_events_recorded, dispatch_uid="metrics.rollup_events")
        send_attempted.connect(receivers.on_send_attempted, dispatch_uid="metrics.rollup_attempt")
        # The router reads the same rollup figures as the health rules.
        evidence.register(mailbox_rates=rates.mailbox_rates)
