"""Reading a CSV file of leads: the stream, its encoding, its lines and its header.

This module owns the file as bytes and text: opening a path or a stream, guessing the
encoding (UTF-8, else what charset-normalizer finds, with Windows' Western code page winning
ties), cutting it into bounded lines (an overlong line becomes one marker, so memory stays
bounded), and mapping the header's columns to Lead fields or custom keys. Every problem of the
file as a whole is an :class:`ImportFileError`, raised before anything is written.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import charset_normalizer

# A real CSV line of leads is well under a few kilobytes; a longer one is a broken export or
# a hostile file, and reading it whole would break the bounded-memory promise.
MAX_LINE_BYTES = 64 * 1024
# How much of the file the encoding is guessed from (charset-normalizer reads it whole).
ENCODING_SAMPLE_BYTES = 256 * 1024
DELIMITERS = (",", ";", "\t", "|")

FIELD_ALIASES = {
    "email": ("email", "e_mail", "email_address", "e_mail_address", "mail", "work_email"),
    "first_name": ("first_name", "firstname", "first", "given_name", "forename"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name"),
    "company": ("company", "company_name", "organization", "organisation", "account"),
    "title": ("title", "job_title", "position", "role", "jobtitle"),
    "timezone": ("timezone", "time_zone", "tz"),
}
_ALIAS_TO_FIELD = {alias: name for name, aliases in FIELD_ALIASES.items() for alias in aliases}
# Names the templates give to something else: a column with one of these names is refused.
RESERVED = frozenset({"lead", "sender_name", "sender_first_name", "sender_email"})

# What an overlong line is replaced by: the row that holds it is reported, not read.
OVERLONG = "\x00\x00overlong-line\x00\x00"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (nothing was written)."""


def detect_encoding(sample: bytes) -> str:
    """The encoding of a CSV file from a sample of its bytes: UTF-8 when the sample holds any
    UTF-8 character, else what charset-normalizer finds (Excel's "CSV" is cp1252 on
    Windows), else UTF-8 (bytes it cannot decode are then reported row by row)."""
    text = sample.decode("utf-8", "surrogateescape")
    if any(char > "\x7f" and not "\udc80" <= char <= "\udcff" for char in text):
        # UTF-8 characters (cut mid-character at the end of the sample, or beside a row of
        # another encoding): a UTF-8 file, and the rows that are not are reported one by one.
        return "utf-8"
    best = charset_normalizer.from_bytes(sample).best()
    if best is None:
        return "utf-8"
    # A few accented names fit many single-byte code pages equally well, and a list of names
    # is too short for the language guess to tell them apart ("Crédit à" reads as cp1257's
    # "Crédit ą"): when Windows' Western code page reads the sample as cleanly as the best
    # guess, it wins; it is the encoding of most spreadsheets saved as "CSV" that are not
    # UTF-8. Cyrillic or Greek text reads as gibberish in it and keeps its own code page.
    western = charset_normalizer.from_bytes(sample, cp_isolation=["cp1252"]).best()
    if western is not None and western.chaos <= best.chaos:
        return "cp1252"
    return best.encoding


class Lines:
    """Decoded lines of a binary or text stream, each at most MAX_LINE_BYTES long.

    An overlong line is consumed to its end and replaced by a marker, so it becomes one row
    error instead of a memory spike. The encoding is decided at the first line that is not
    ASCII (every line before it reads the same in any of the candidates), from that line and
    up to ENCODING_SAMPLE_BYTES after it when the stream can seek back. Bytes the encoding
    cannot decode are kept as surrogates and reported by the row that holds them.
    """

    def __init__(self, stream: IO[Any]) -> None:
        self.stream = stream
        self.bytes_read = 0
        self.first = True
        self.encoding: str | None = None  # None while every line was ASCII

    def _decide(self, line: bytes) -> str:
        sample = line
        if getattr(self.stream, "seekable", lambda: False)():
            position = self.stream.tell()
            more = self.stream.read(ENCODING_SAMPLE_BYTES)
            self.stream.seek(position)
            sample += more if isinstance(more, bytes) else more.encode("utf-8", "surrogateescape")
        return detect_encoding(sample)

    def __iter__(self) -> Iterator[str]:
        while True:
            chunk = self.stream.readline(MAX_LINE_BYTES + 1)
            if not chunk:
                return
            raw = chunk if isinstance(chunk, bytes) else chunk.encode("utf-8", "surrogateescape")
            self.bytes_read += len(raw)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while True:  # the rest of the overlong line, in bounded chunks
                    rest = self.stream.readline(MAX_LINE_BYTES)
                    if not rest:
                        break
                    rest_b = rest if isinstance(rest, bytes) else rest.encode("utf-8", "replace")
                    self.bytes_read += len(rest_b)
                    if rest_b.endswith(b"\n"):
                        break
                yield OVERLONG + "\n"
                continue
            if self.first:
                self.first = False
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if self.encoding is None and not raw.isascii():
                self.encoding = self._decide(raw)
            yield raw.decode(self.encoding or "ascii", "surrogateescape")


def open_source(source: str | os.PathLike[str] | IO[Any]) -> tuple[IO[Any], int | None, bool]:
    """The stream, its size when known, and whether we opened it (and must close it)."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            return path.open("rb"), path.stat().st_size, True
        except OSError as exc:
            raise ImportFileError(f"cannot read {path}: {exc.strerror}") from None
    size = getattr(source, "size", None)
    return source, size if isinstance(size, int) else None, False


def has_bad_bytes(text: str) -> bool:
    # surrogateescape maps each byte that is not UTF-8 to U+DC80..U+DCFF.
    if text.isascii():
        return False
    return any("\udc80" <= char <= "\udcff" for char in text)


def _column_key(header: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")
    if key and key[0].isdigit():
        key = f"field_{key}"
    return key


@dataclass
class Header:
    delimiter: str
    # Per column: the Lead field or custom key it feeds.
    keys: list[str]
    email_index: int


def parse_header(line: str) -> Header:
    if OVERLONG in line:
        raise ImportFileError("the header line is too long: is this a CSV file of leads?")
    if has_bad_bytes(line):
        raise ImportFileError("the header is not UTF-8 text: save the file as CSV UTF-8")
    if "\x00" in line:
        raise ImportFileError("the file is binary, not CSV text")
    candidates = []
    for delimiter in DELIMITERS:
        columns = next(csv.reader([line], delimiter=delimiter), [])
        keys = [_column_key(c) for c in columns]
        fields = [_ALIAS_TO_FIELD.get(k, k) for k in keys]
        if "email" in fields:
            candidates.append((delimiter, fields, columns))
    if not candidates:
        found = next(csv.reader([line]), [])
        guess = max(DELIMITERS, key=line.count)
        hint = ""
        if guess != "," and line.count(guess) and len(found) <= 1:
            hint = f" (the header looks {guess!r}-separated)"
        raise ImportFileError(
            "no email column in the header; expected one of "
            f"{', '.join(FIELD_ALIASES['email'])}; found: {', '.join(found) or 'nothing'}{hint}"
        )
    delimiter, fields, columns = max(candidates, key=lambda c: len(c[1]))
    for index, key in enumerate(fields):
        if not key:
            fields[index] = f"column_{index + 1}"
    duplicates = [k for k, n in Counter(fields).items() if n > 1]
    if duplicates:
        raise ImportFileError(f"several columns map to {', '.join(duplicates)}: keep one of each")
    reserved = RESERVED.intersection(fields)
    if reserved:
        raise ImportFileError(
            f"column name {', '.join(sorted(reserved))} is reserved for templates: rename it"
        )
    return Header(delimiter, fields, fields.index("email"))
