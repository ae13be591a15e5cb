"""Microsoft 365 mailboxes: SMTP submission with XOAUTH2 (basic auth ends in 2026)."""
