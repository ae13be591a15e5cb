from django.apps import AppConfig


class TelegramConfig(AppConfig):
    name = "outreach.telegram"
    label = "telegram"
    verbose_name = "Telegram bot"
