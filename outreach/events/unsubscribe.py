"""Moved to :mod:`outreach.campaigns.unsubscribe`; this name stays only while the sending
engine still imports it (removed with the sending split)."""

from outreach.campaigns.unsubscribe import make_token, read_token, unsubscribe_url

__all__ = ["make_token", "read_token", "unsubscribe_url"]
