"""The SMTP provider's tests use the sending tests' real SMTP server (STARTTLS and AUTH)."""

from outreach.sending.tests.conftest import ca_file, smtp_password, smtp_server, tls

__all__ = ["ca_file", "smtp_password", "smtp_server", "tls"]
