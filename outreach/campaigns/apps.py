from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "outreach.campaigns"
    label = "campaigns"

    def ready(self) -> None:
        from outreach.campaigns.models import Campaign
        from outreach.pool.dns import spec

        # The DNS checks ask for the tracking host only while some campaign tracks.
        spec.set_tracking_probe(Campaign.tracking_in_use)
