from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "outreach.events"
    label = "events"

    def ready(self) -> None:
        from outreach.events import counts, inbox, outgoing, record, tracking, unsubscribe
        from outreach.pool import config_spec
        from outreach.providers.simulated import sender as simulated
        from outreach.scheduler import evidence
        from outreach.sending import hooks
        from outreach.sending.signals import send_refused

        outgoing.connect_signals()
        # The sending engine builds messages with our links and reads Sent folders through
        # our IMAP access; its refusals at send time become our events.
        hooks.register(
            unsubscribe_url=unsubscribe.unsubscribe_url,
            instrument=tracking.instrument,
            imap_config=inbox.imap_config,
            imap_connect=inbox.connect,
        )
        send_refused.connect(record.on_send_refused, dispatch_uid="events.send_refused")
        # The scheduler reads these counts without importing the events layer.
        evidence.register(outcome_counts=counts.outcome_counts, day_outcomes=counts.day_outcomes)
        # The simulated provider's notifications come due here, as a webhook's would.
        simulated.set_recorder(record.record_simulated)
        # `outreach apply` reads the [[webhooks]] of pool.toml; the endpoints are ours.
        config_spec.register_webhook_section(
            config_spec.WebhookSection(outgoing.EVENT_TYPES, outgoing.apply_endpoints)
        )
