from django.apps import AppConfig


class SendingConfig(AppConfig):
    name = "outreach.sending"
    label = "sending"

    def ready(self) -> None:
        # The scheduler's lease recovery settles expired ``sending`` rows through the engine;
        # registered here because the scheduler sits below the sending layer.
        from outreach.scheduler import engine as control_plane
        from outreach.scheduler.recovery import register_sending_expiry
        from outreach.sending import engine, reconcile
        from outreach.sending.recovery import expire_sending

        register_sending_expiry(expire_sending)
        # A pass of the control plane (``outreach tick``, the simulation) reconciles messages
        # in doubt and, when asked, sends what it claimed.
        control_plane.lend(reconcile=reconcile.reconcile_due, send_due=engine.send_due)
