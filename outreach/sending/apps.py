from django.apps import AppConfig


class SendingConfig(AppConfig):
    name = "outreach.sending"
    label = "sending"

    def ready(self) -> None:
        # The scheduler's lease recovery settles expired ``sending`` rows through the engine;
        # registered here because the scheduler sits below the sending layer.
        from outreach.scheduler.recovery import register_sending_expiry
        from outreach.sending.recovery import expire_sending

        register_sending_expiry(expire_sending)
