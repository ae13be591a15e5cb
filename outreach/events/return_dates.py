"""Return dates of the reply rules (outreach.events.classify): the day an absence notice says
the writer is back, read from dates in English, German, French and Spanish, numeric or named,
with or without a year, and from weekdays and "tomorrow" after a cue word.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from outreach.events.classify_words import any_of

_MONTHS = {
    # English, German, French, Spanish (and their usual abbreviations)
    **dict.fromkeys(["january", "jan", "januar", "jänner", "janvier", "janv", "enero", "ene"], 1),
    **dict.fromkeys(["february", "feb", "februar", "février", "fevrier", "févr", "febrero"], 2),
    **dict.fromkeys(["march", "mar", "märz", "maerz", "mars", "marzo"], 3),
    **dict.fromkeys(["april", "apr", "avril", "avr", "abril", "abr"], 4),
    **dict.fromkeys(["may", "mai", "mayo"], 5),
    **dict.fromkeys(["june", "jun", "juni", "juin", "junio"], 6),
    **dict.fromkeys(["july", "jul", "juli", "juillet", "juil", "julio"], 7),
    **dict.fromkeys(["august", "aug", "août", "aout", "agosto", "ago"], 8),
    **dict.fromkeys(["september", "sep", "sept", "septembre", "septiembre", "setiembre"], 9),
    **dict.fromkeys(["october", "oct", "oktober", "okt", "octobre", "octubre"], 10),
    **dict.fromkeys(["november", "nov", "novembre", "noviembre"], 11),
    **dict.fromkeys(
        ["december", "dec", "dezember", "dez", "décembre", "decembre", "diciembre", "dic"], 12
    ),
}
_WEEKDAYS = {
    **dict.fromkeys(["monday", "montag", "lundi", "lunes"], 0),
    **dict.fromkeys(["tuesday", "dienstag", "mardi", "martes"], 1),
    **dict.fromkeys(["wednesday", "mittwoch", "mercredi", "miércoles", "miercoles"], 2),
    **dict.fromkeys(["thursday", "donnerstag", "jeudi", "jueves"], 3),
    **dict.fromkeys(["friday", "freitag", "vendredi", "viernes"], 4),
}
_MONTH_NAMES = "|".join(sorted((re.escape(m) for m in _MONTHS), key=len, reverse=True))
_DAY = r"(?P<d>[0-3]?\d)(?:st|nd|rd|th|er|\.)?"
_DATE_PATTERNS = [
    re.compile(r"\b(?P<y>20\d\d)-(?P<m>[01]?\d)-(?P<d>[0-3]?\d)\b"),
    re.compile(r"\b(?P<a>[0-3]?\d)[./](?P<b>[01]?\d)(?:[./](?P<y>(20)?\d\d))?\b"),
    re.compile(
        rf"\b{_DAY}\s*(?:de\s+)?(?P<mn>{_MONTH_NAMES})\.?(?:\s+(?:de\s+)?(?P<y>20\d\d))?\b", re.I
    ),
    re.compile(rf"\b(?P<mn>{_MONTH_NAMES})\.?\s+{_DAY}(?:,?\s+(?P<y>20\d\d))?\b", re.I),
    # "Dec 2-3": the end of the range
    re.compile(rf"\b(?P<mn>{_MONTH_NAMES})\.?\s+[0-3]?\d\s*[-–]\s*{_DAY}", re.I),
    # A day of the month alone: "back on the 10th", "vuelvo el viernes 11"
    re.compile(r"\bthe (?P<o>[0-3]?\d)(?:st|nd|rd|th)\b", re.I),
    re.compile(
        rf"\b(?:le|el|am|on) (?P<o>[0-3]?\d)(?:er|\.)?(?![\d./:]|\s*(?:de\s+)?(?:{_MONTH_NAMES})\b)"
        r"(?!\s*(?:am|pm|h\b|uhr))",
        re.I,
    ),
    re.compile(
        rf"\b(?:{'|'.join(_WEEKDAYS)}),?\s+(?:the\s+)?(?P<o>[0-3]?\d)(?:st|nd|rd|th|er|\.)?"
        r"(?![\d./:]|\s*(?:am|pm|h\b|uhr))",
        re.I,
    ),
]
# Words saying the writer is back (strong) or away until (weak) the date that follows; of two
# dates, "until the 3rd … we reopen on the 4th", the one after the stronger cue wins.
_BACK_CUE = re.compile(
    r"\b(back|return\w*|reopen\w*|resum\w*|wieder|zurück|ab|retour|reprendrai|à partir|a partir|"
    r"dès|vuelvo|vuelta|regres\w*|volver\w*|volveré|reincorpor\w*)\b",
    re.I,
)
_UNTIL_CUE = re.compile(r"\b(until|till|through|thru|bis|jusqu\w*|hasta)\b", re.I)
RETURN_CUE = any_of(
    r"until|till|through|back|return|returning",
    r"bis|wieder|zurück|ab",
    r"jusqu|retour|à partir|a partir|reprendrai|dès",
    r"hasta|vuelta|regres|volver|a partir",
)
_WEEKDAY_NAMES = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_WEEKDAY_CUE = re.compile(
    r"\b(?:until|till|back|return\w*|bis|ab|wieder|zurück|jusqu'?a?u?|retour|hasta|"
    r"regres\w*|volver\w*|vuelta)\b[^.\n]{0,30}?\b(?P<w>" + _WEEKDAY_NAMES + r")\b",
    re.I,
)


def return_date(text: str, received: date) -> date | None:
    """The day the writer is back, read from an absence notice; None when it gives none.

    Of the dates found, the one after a cue word ("until", "back", "bis", "jusqu'au",
    "hasta" …) wins, else the latest; a date without a year is the next one on or after
    ``received``. Numeric dates are day first (as written in DE, FR, ES), except where the
    first number cannot be a day.
    """
    found: list[tuple[int, date]] = []
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            when = _to_date(match, received)
            if when is None or when < received - timedelta(days=1):
                continue
            if when > received + timedelta(days=400):
                continue
            before = text[max(0, match.start() - 40) : match.start()]
            found.append((_cue_strength(before), when))
    if found:
        best_cue = max(c for c, _ in found)
        return max(d for c, d in found if c == best_cue)
    weekdays = []
    for weekday in _WEEKDAY_CUE.finditer(text):
        wanted = _WEEKDAYS[weekday.group("w").lower()]
        ahead = (wanted - received.weekday()) % 7 or 7
        weekdays.append((_cue_strength(weekday.group(0)), received + timedelta(days=ahead)))
    if weekdays:
        return max(weekdays)[1]
    if _TOMORROW.search(text):
        return received + timedelta(days=1)
    return None


_TOMORROW = re.compile(
    r"\b(back|return\w*|wieder|zurück|retour|de vuelta|vuelvo)\b[^.\n]{0,20}"
    r"\b(tomorrow|morgen|demain|mañana)\b",
    re.I,
)


def _cue_strength(before: str) -> int:
    """2 after a word saying "back", 1 after one saying "until", 0 otherwise; the nearest wins."""
    cues = [(m.end(), 2) for m in _BACK_CUE.finditer(before)]
    cues += [(m.end(), 1) for m in _UNTIL_CUE.finditer(before)]
    return max(cues)[1] if cues else 0


def _to_date(match: re.Match[str], received: date) -> date | None:
    groups = match.groupdict()
    year_text = groups.get("y")
    year = None
    if year_text:
        year = int(year_text) if len(year_text) == 4 else 2000 + int(year_text)
    if groups.get("o"):
        # A day of the month alone: this month's, or next month's when it has passed.
        day, month, year = int(groups["o"]), received.month, received.year
        if day < received.day:
            month, year = (1, year + 1) if month == 12 else (month + 1, year)
        try:
            return date(year, month, day)
        except ValueError:
            return None
    if groups.get("mn"):
        options = [(_MONTHS[groups["mn"].lower()], int(groups["d"]))]
    elif groups.get("a"):
        # 07/12 is 7 December in DE/FR/ES and July 12 in the US: of the readings that make
        # a date, the nearest one after the notice.
        a, b = int(groups["a"]), int(groups["b"])
        options = [(b, a), (a, b)]
    else:
        options = [(int(groups["m"]), int(groups["d"]))]
    dates = []
    for month, day in options:
        try:
            if year is not None:
                dates.append(date(year, month, day))
                continue
            when = date(received.year, month, day)
            # A year-less date in the recent past is past (the start of the absence), not
            # next year's.
            if when < received - timedelta(days=60):
                when = date(received.year + 1, month, day)
            dates.append(when)
        except ValueError:
            continue
    ahead = [d for d in dates if d >= received - timedelta(days=1)]
    if ahead:
        return min(ahead)
    return dates[0] if dates else None
