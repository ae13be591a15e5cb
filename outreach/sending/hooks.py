"""What the apps above the sending engine lend it, registered when those apps are ready.

The engine sits below ``events`` and ``alerts`` (docs/architecture.md) and imports neither.
Yet building a message needs the events collector's unsubscribe link and click tracking,
reconciliation reads Sent folders through the inbox's IMAP access, and routing avoids the
accounts the alerts' provider watch found unhealthy. Each of those apps fills its slots here in
its ``AppConfig.ready()``; what the engine tells them (attempts, refusals, circuit changes)
goes up as signals (:mod:`outreach.sending.signals`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from outreach.pool.models import Mailbox

_slots: dict[str, Callable[..., Any]] = {}


class NotRegistered(LookupError):
    """An app that fills a slot is not installed (every one is, in a real deployment)."""


def register(**functions: Callable[..., Any]) -> None:
    """Fill slots by name; an app calls this from its ``ready()``."""
    unknown = set(functions) - _NAMES
    if unknown:
        raise TypeError(f"no such sending hook: {sorted(unknown)}")
    _slots.update(functions)


def _slot(name: str) -> Callable[..., Any]:
    try:
        return _slots[name]
    except KeyError:
        raise NotRegistered(f"nothing registered the sending hook {name!r}") from None


def unsubscribe_url(message_pk: int) -> str:
    """The message's one-click unsubscribe link (events)."""
    return str(_slot("unsubscribe_url")(message_pk))


def instrument(
    html: str, *, message_pk: int, host: str, opens: bool, clicks: bool, unsubscribe_url: str
) -> str:
    """The HTML part with its links tracked and/or the open pixel added (events)."""
    return str(
        _slot("instrument")(
            html,
            message_pk=message_pk,
            host=host,
            opens=opens,
            clicks=clicks,
            unsubscribe_url=unsubscribe_url,
        )
    )


def imap_config(mailbox: Mailbox) -> Any:
    """The mailbox's IMAP access, None when it has none; raises when it cannot be read
    (events)."""
    return _slot("imap_config")(mailbox)


def imap_connect(config: Any) -> Any:
    """A logged-in IMAP client (a context manager) for what :func:`imap_config` returned."""
    return _slot("imap_connect")(config)


def provider_problems() -> dict[int, list[Any]]:
    """The accounts the provider health watch found unhealthy, with its problems (alerts)."""
    return dict(_slot("provider_problems")())


_NAMES = {"unsubscribe_url", "instrument", "imap_config", "imap_connect", "provider_problems"}
