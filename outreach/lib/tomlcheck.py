"""Checks shared by the TOML configuration files (the pool's and the campaigns').

TOML integers are 64-bit (the spec lets a parser refuse anything larger), but Python's
``tomllib`` reads any size: a cap of ``100000000000000000000`` would reach the database and
fail there with a traceback. And TOML has no positions once parsed, so an error names its
key and finds the line by looking for ``key = value`` in the text.
"""

from __future__ import annotations

import re
from typing import Any

INT64_MAX = 2**63 - 1


def oversized_integer(data: Any, path: str = "") -> tuple[str, int] | None:
    """The dotted key and value of the first integer in parsed TOML ``data`` that does not
    fit in 64 bits, or None."""
    if isinstance(data, dict):
        items = [(f"{path}.{k}" if path else str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(data)]
    else:
        if isinstance(data, int) and not isinstance(data, bool) and abs(data) > INT64_MAX:
            return path, data
        return None
    for key, value in items:
        found = oversized_integer(value, key)
        if found:
            return found
    return None


def line_of(text: str, key: str, value: Any) -> int | None:
    """The line of ``key = value`` in ``text`` when exactly one line has it (else None)."""
    if isinstance(value, bool):
        literal = "true" if value else "false"
    elif isinstance(value, int | float):
        literal = str(value)
    elif isinstance(value, str):
        literal = '"' + value
    else:
        return None
    name = re.escape(key.rpartition(".")[2].split("[")[0])
    pattern = re.compile(rf"^\s*{name}\s*=\s*{re.escape(literal)}")
    hits = [n for n, line in enumerate(text.splitlines(), 1) if pattern.match(line)]
    return hits[0] if len(hits) == 1 else None
