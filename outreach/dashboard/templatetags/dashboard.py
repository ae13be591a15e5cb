"""Small template filters of the dashboard."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def pct(value: float | None, digits: int = 1) -> str:
    """A rate (0.031) as a percentage ("3.1%"); a dash when there is no rate."""
    if value is None:
        return "–"
    return f"{100 * value:.{digits}f}%"


@register.filter
def get(mapping: dict[Any, Any] | None, key: Any) -> Any:
    """``mapping[key]`` in a template, 0 when absent (counts)."""
    if not mapping:
        return 0
    return mapping.get(key, 0)


@register.filter
def dictget(mapping: dict[Any, Any] | None, key: Any) -> Any:
    """``mapping[key]`` in a template, None when absent."""
    return (mapping or {}).get(key)
