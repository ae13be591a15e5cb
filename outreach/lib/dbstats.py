"""Query-planner statistics on SQLite.

PostgreSQL's autovacuum keeps each table's statistics current. SQLite keeps none until
``ANALYZE`` runs: without them its planner cannot tell that a list of a hundred ids is a
narrower way into the messages table than "every claimed message", and each batch of the
sending engine (and each routing pass) reads the whole backlog. So the long-running loops
call :func:`refresh` on every pass; it runs ``ANALYZE`` at most once an interval per
process (the first call at once), on a sample of each index (``PRAGMA analysis_limit``).
"""

from __future__ import annotations

import threading
import time

from django.db import connection

EVERY_SECONDS = 3600.0
ANALYSIS_ROWS = 1000

_lock = threading.Lock()
_last: float | None = None


def refresh(*, every_seconds: float = EVERY_SECONDS) -> bool:
    """Run ``ANALYZE`` on SQLite when the last run in this process is older than
    ``every_seconds``; returns whether it ran. Nothing to do on PostgreSQL."""
    global _last
    if connection.vendor != "sqlite":
        return False
    with _lock:
        now = time.monotonic()
        if _last is not None and now - _last < every_seconds:
            return False
        _last = now
    try:
        with connection.cursor() as cursor:
            # Statistics from a sample of each index (about ANALYSIS_ROWS rows), not all of
            # it: the planner needs the shape of the data, and a full ANALYZE of a database
            # of millions of rows holds the write lock for seconds.
            cursor.execute(f"PRAGMA analysis_limit = {ANALYSIS_ROWS}")
            cursor.execute("ANALYZE")
    except Exception:
        _last = None  # try again on the next call, not in an hour
        raise
    return True
