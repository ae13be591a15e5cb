from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "outreach.events"
    label = "events"

    def ready(self) -> None:
        from outreach.events import outgoing, record
        from outreach.pool import config
        from outreach.providers.simulated import sender as simulated

        outgoing.connect_signals()
        # The simulated provider's notifications come due here, as a webhook's would.
        simulated.set_recorder(record.record_simulated)
        # `outreach apply` reads the [[webhooks]] of pool.toml; the endpoints are ours.
        config.register_webhook_section(
            config.WebhookSection(outgoing.EVENT_TYPES, outgoing.apply_endpoints)
        )
