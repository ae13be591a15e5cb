from typing import Any

from django.apps import AppConfig


class OutreachConfig(AppConfig):
    name = "outreach"
    label = "outreach"
    verbose_name = "outreach"

    def ready(self) -> None:
        from outreach import heartbeats, outages
        from outreach.campaigns.signals import claim_cancelled
        from outreach.lib import loop

        loop.heartbeat_hook = heartbeats.beat
        loop.db_recovered_hook = outages.database_recovered
        # Campaigns sit below the control plane: they announce a cancelled claim, the control
        # plane gives its units back.
        claim_cancelled.connect(_release_claim, dispatch_uid="scheduler.release_claim")


def _release_claim(sender: object, message: Any, **kwargs: object) -> None:
    # Imported here: models cannot be imported while this module loads (before app loading).
    from outreach.scheduler.counters import release_message

    release_message(message)
