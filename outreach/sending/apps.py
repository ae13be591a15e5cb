from django.apps import AppConfig


class SendingConfig(AppConfig):
    name = "outreach.sending"
    label = "sending"
