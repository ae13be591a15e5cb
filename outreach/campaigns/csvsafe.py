"""CSV formula injection: values a spreadsheet would run as formulas are neutralized on export.

Lead data is untrusted: a first name of ``=HYPERLINK("http://evil", "click")`` is stored as
typed (it is harmless in an email), but any CSV the operator downloads and opens in a
spreadsheet must show it as text. OWASP's advice: prefix such cells with a single quote.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

# A cell starting with one of these is a formula (or starts one) in Excel, LibreOffice and
# Google Sheets; tab and CR are included because some spreadsheets strip them first.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """``value`` as text a spreadsheet shows verbatim and never evaluates."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def write_rows(out: IO[str], rows: Iterable[Iterable[Any]]) -> None:
    """Write ``rows`` as CSV to ``out`` with every cell passed through :func:`safe_cell`."""
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
