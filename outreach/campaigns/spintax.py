"""Spintax: ``{Hi|Hello|Hey}``, nested, resolved deterministically from a seed.

Spintax is resolved on the template source before Jinja2 sees it, so lead data (which only
enters through Jinja2 variables) is never spun. Jinja2's own delimiters ``{{ }}``, ``{% %}``
and ``{# #}`` are copied through untouched, even inside a spin group. A brace group without a
``|`` is not spintax (CSS in a ``<style>`` block, for instance) and is kept as written.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

_JINJA_CLOSE = {"{{": "}}", "{%": "%}", "{#": "#}"}


class SpintaxError(ValueError):
    pass


@dataclass
class _Group:
    # Each alternative is a sequence of literal strings and nested groups.
    alternatives: list[list[str | _Group]]
    source: str  # the group as written, braces included


def spin(text: str, seed: str) -> str:
    """``text`` with every spin group replaced by one of its alternatives.

    The same ``text`` and ``seed`` always give the same result (in every process: the seed
    is hashed with SHA-512 by :class:`random.Random`, not with Python's salted ``hash``).
    Raises :class:`SpintaxError` on an unclosed ``{``.
    """
    if "{" not in text:
        return text
    nodes, spins = _parsed(text)
    if not spins:
        return text  # braces, but no choice anywhere: Jinja2 delimiters, CSS
    return _render(nodes, random.Random(seed))


def check(text: str) -> str | None:
    """A description of what is wrong with ``text``'s spintax, or None."""
    try:
        _parse(text)
    except SpintaxError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=1024)
def _parsed(text: str) -> tuple[list[str | _Group], bool]:
    """``text`` parsed (a campaign's few templates are parsed once per process, not once per
    message), and whether any group offers a choice."""
    nodes = _parse(text)
    return nodes, _has_choice(nodes)


def _has_choice(nodes: list[str | _Group]) -> bool:
    return any(
        isinstance(node, _Group)
        and (len(node.alternatives) > 1 or any(_has_choice(a) for a in node.alternatives))
        for node in nodes
    )


def _parse(text: str) -> list[str | _Group]:
    nodes, pos = _parse_sequence(text, 0, top=True)
    assert pos == len(text)
    return nodes


def _parse_sequence(text: str, pos: int, *, top: bool) -> tuple[list[str | _Group], int]:
    """Parse until the end (top level) or an unmatched ``|``/``}`` (inside a group)."""
    nodes: list[str | _Group] = []
    literal: list[str] = []
    n = len(text)
    while pos < n:
        two = text[pos : pos + 2]
        if two in _JINJA_CLOSE:
            end = text.find(_JINJA_CLOSE[two], pos + 2)
            if end < 0:
                # Jinja2 reports its own syntax errors; keep the rest verbatim.
                literal.append(text[pos:])
                pos = n
                break
            literal.append(text[pos : end + 2])
            pos = end + 2
            continue
        char = text[pos]
        if char == "{":
            if literal:
                nodes.append("".join(literal))
                literal = []
            group, pos = _parse_group(text, pos)
            nodes.append(group)
            continue
        if not top and char in "|}":
            break
        literal.append(char)
        pos += 1
    if literal:
        nodes.append("".join(literal))
    return nodes, pos


def _parse_group(text: str, start: int) -> tuple[_Group, int]:
    alternatives: list[list[str | _Group]] = []
    pos = start + 1
    while True:
        nodes, pos = _parse_sequence(text, pos, top=False)
        alternatives.append(nodes)
        if pos >= len(text):
            line = text.count("\n", 0, start) + 1
            raise SpintaxError(f"spintax: '{{' on line {line} is never closed")
        if text[pos] == "}":
            return _Group(alternatives, text[start : pos + 1]), pos + 1
        pos += 1  # "|"


def _render(nodes: list[str | _Group], rng: random.Random) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif len(node.alternatives) == 1:
            # No "|": literal braces around whatever is inside (which may itself spin).
            out.append("{" + _render(node.alternatives[0], rng) + "}")
        else:
            out.append(_render(rng.choice(node.alternatives), rng))
    return "".join(out)
