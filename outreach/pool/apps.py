from django.apps import AppConfig


class PoolConfig(AppConfig):
    name = "outreach.pool"
    label = "pool"
    verbose_name = "Sending pool"
