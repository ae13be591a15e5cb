"""``{% inbox_unread as n %}``: the inbox's unread count for the navigation."""

from __future__ import annotations

from django import template

from outreach.dashboard.inbox import unread_count

register = template.Library()


@register.simple_tag
def inbox_unread() -> int:
    return unread_count()
