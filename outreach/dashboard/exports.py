"""CSV exports whose cells cannot turn into spreadsheet formulas.

Every cell goes through :func:`outreach.campaigns.csvsafe.safe_cell` (a value starting with
``=``, ``+``, ``-``, ``@``, tab or CR gets a leading single quote), so every export of the
project escapes the same way. Rows are produced line by line for a streaming response.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from outreach.campaigns.csvsafe import safe_cell


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The CSV text, line by line, every cell made formula-safe."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])
