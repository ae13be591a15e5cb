from django.apps import AppConfig


class OutreachConfig(AppConfig):
    name = "outreach"
    label = "outreach"
    verbose_name = "outreach"

    def ready(self) -> None:
        from outreach import heartbeats, outages
        from outreach.lib import loop

        loop.heartbeat_hook = heartbeats.beat
        loop.db_recovered_hook = outages.database_recovered
