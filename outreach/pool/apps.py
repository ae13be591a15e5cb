from django.apps import AppConfig


class PoolConfig(AppConfig):
    name = "outreach.pool"
    label = "pool"
    verbose_name = "Sending pool"

    def ready(self) -> None:
        from outreach.pool.tokens import DatabaseStore
        from outreach.providers import oauth2

        # Tokens are kept in the database so every worker shares them (providers never
        # touch the database themselves).
        oauth2.set_store(DatabaseStore())
