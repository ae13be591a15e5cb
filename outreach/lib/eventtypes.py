"""The event vocabulary, defined once: what a recipient's mail system or the recipient did.

``outreach.events.models.Event.Type`` and ``Event.BounceType`` take their values from here;
the events collector normalizes every provider's payload into these words, and the simulated
provider speaks them directly. Kept in ``lib`` because every layer names them.
"""

DELIVERED = "delivered"
BOUNCED = "bounced"
DEFERRED = "deferred"
COMPLAINED = "complained"
UNSUBSCRIBED = "unsubscribed"
OPENED = "opened"
CLICKED = "clicked"
REPLIED = "replied"
AUTO_REPLIED = "auto_replied"
BLOCKED = "blocked"

# Bounce types: a hard bounce suppresses the address, a soft one does not.
HARD = "hard"
SOFT = "soft"
