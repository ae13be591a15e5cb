"""Django's SQLite backend with two costs of every statement paid once instead of each time.

Django's SQLite cursor rewrites each statement's ``%s`` placeholders into SQLite's ``?`` with a
regular expression, on every run; the send path and the scheduler run the same few dozen
statements (multi-row INSERTs of thousands of placeholders among them) again and again. Here
Django's rewriting of each statement text is kept.

Django converts every DateTimeField read from SQLite (stored naive, in UTC) through
``make_aware``, which checks again that the value is naive. Here a naive value is given the
connection's zone directly: the same result.

Everything else (features, introspection, schema editor, creation) is Django's. Measured:
docs/scaling.md, "The SQLite backend".
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db.backends.sqlite3 import base, operations
from django.utils.dateparse import parse_datetime

# Distinct statement texts kept: a few hundred shapes run in a process (a bulk INSERT has one
# shape per row count); a text is kept with its rewriting, so this also bounds the memory.
STATEMENTS_KEPT = 512
# Statement text -> Django's rewriting of it, the first STATEMENTS_KEPT texts of the process.
_rewritten: dict[str, str] = {}


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: list[str] | None = None) -> str:
        if param_names is not None:
            return str(super().convert_query(query, param_names=param_names))  # type: ignore[misc]
        rewritten = _rewritten.get(query)
        if rewritten is None:
            rewritten = str(super().convert_query(query))  # type: ignore[misc]
            if len(_rewritten) < STATEMENTS_KEPT:
                _rewritten[query] = rewritten
        return rewritten


class DatabaseOperations(operations.DatabaseOperations):
    def convert_datetimefield_value(
        self, value: Any, expression: Any, connection: Any
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime.datetime):
            value = parse_datetime(value)
        # The zone of the connection reading the value (the one passed in: a converter kept
        # by lib/sql's readers serves every thread's connection) is None without USE_TZ
        # (Django drops it when USE_TZ or TIME_ZONE change): make_aware(value, zone) for a
        # naive value, without its second check or a read of the settings for every value.
        zone = connection.timezone
        if zone is not None and value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return value


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def create_cursor(self, name: str | None = None) -> SQLiteCursorWrapper:
        return self.connection.cursor(factory=SQLiteCursorWrapper)
