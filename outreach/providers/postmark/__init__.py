"""Postmark through django-anymail."""
