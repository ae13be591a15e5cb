"""The ``database_unreachable`` alert: raised once the database answers again after an outage.

While the database is down nothing can be stored, so the alert is raised on recovery, with the
outage's duration as one loop saw it. Every loop of every process reports; one alert key keeps
it to one alert per quiet period.
"""

from __future__ import annotations

import os
import socket

KIND = "database_unreachable"


def database_recovered(loop_name: str, seconds: float) -> None:
    from outreach.alerts import raise_alert

    host = socket.gethostname()
    raise_alert(
        KIND,
        KIND,
        f"The database was unreachable for {seconds:.0f} s (seen by loop {loop_name} on "
        f"{host}); the engine loops reconnected by themselves. Messages in flight during the "
        "outage may be `unknown`: check them on the dashboard.",
        severity="critical",
        figures={"seconds": round(seconds, 1), "loop": loop_name, "host": host, "pid": os.getpid()},
    )
