"""The Telegram bot: the operator's remote control (status, today, pause, resume, ack).

It sits beside the dashboard: it reads the other apps and changes state only through the
functions the dashboard's actions use, so every change is audited under the Telegram user.
"""
