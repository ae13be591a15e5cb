from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "outreach.alerts"
    label = "alerts"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from outreach.alerts import outbox, prometheus, receivers
        from outreach.events.signals import event_recorded
        from outreach.lib import alerting
        from outreach.metrics.prometheus import register_families
        from outreach.pool.models import StateChange
        from outreach.sending.signals import send_attempted

        alerting.register_sink(outbox.raise_alert)
        register_families(prometheus.families)
        event_recorded.connect(receivers.on_event_recorded, dispatch_uid="alerts.rules_event")
        send_attempted.connect(receivers.on_send_attempted, dispatch_uid="alerts.rules_attempt")
        post_save.connect(
            receivers.on_state_change, sender=StateChange, dispatch_uid="alerts.state_change"
        )
