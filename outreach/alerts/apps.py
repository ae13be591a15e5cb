from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "outreach.alerts"
    label = "alerts"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from outreach.alerts import outbox, prometheus, receivers, rules
        from outreach.events.signals import events_recorded
        from outreach.lib import alerting
        from outreach.metrics.prometheus import register_families
        from outreach.pool.models import StateChange
        from outreach.scheduler import engine as control_plane
        from outreach.sending import hooks
        from outreach.sending.signals import circuit_changed, send_attempted

        alerting.register_sink(outbox.raise_alert)
        # A pass of the control plane runs the health rules' periodic evaluation when asked.
        control_plane.lend(health=rules.periodic_pass)
        register_families(prometheus.families)
        events_recorded.connect(receivers.on_events_recorded, dispatch_uid="alerts.rules_events")
        send_attempted.connect(receivers.on_send_attempted, dispatch_uid="alerts.rules_attempt")
        circuit_changed.connect(receivers.on_circuit_changed, dispatch_uid="alerts.circuit")
        # The sending engine's circuit breakers avoid the accounts our provider watch flags.
        hooks.register(provider_problems=receivers.provider_problems)
        post_save.connect(
            receivers.on_state_change, sender=StateChange, dispatch_uid="alerts.state_change"
        )
