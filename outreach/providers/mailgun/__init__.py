"""Mailgun through django-anymail."""
