"""The plain-text reading of an HTML message part, on the standard library's HTML parser.

What a reader of the text part should see, not a markup language:

- paragraphs, headings, lists, quotes and tables are blocks separated by a blank line;
  ``<br>`` and the end of a ``<div>``, list item or table row end a line;
- runs of whitespace in text are one space (``<pre>`` keeps its own);
- a list item starts with "- " (numbered in an ``<ol>``), a quoted line with "> ";
- a link reads "text (address)", or just the address when its text is the address or it
  has none; ``mailto:`` addresses lose their scheme;
- images, styles, scripts, the head and comments say nothing; character references are
  decoded; emphasis is plain text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose content is a paragraph of its own (a blank line around it).
_PARAGRAPHS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "blockquote",
    "pre", "address", "figure", "hr", "section", "article", "header", "footer", "main",
    "nav", "aside", "form", "fieldset", "center",
}  # fmt: skip
# Elements that end a line.
_LINES = {"div", "li", "tr", "dt", "dd", "caption", "figcaption", "br"}
# Elements whose content is never read.
_SILENT = {"style", "script", "head", "title", "template", "noscript", "svg", "object"}
_SPACES = re.compile(r"\s+")
_BREAK = "\n"
_BLANK = "\n\n"


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.silent = 0
        self.pre = 0
        self.quote = 0
        self.lists: list[list[int]] = []  # per open list: [is_ordered, items so far]
        self.links: list[tuple[str, int]] = []  # href, index in out where its text starts

    # Breaks are queued as markers and settled in text(): several in a row count once.
    def _break(self, kind: str) -> None:
        if self.out and self.out[-1] in (_BREAK, _BLANK):
            if kind == _BLANK:
                self.out[-1] = _BLANK
            return
        self.out.append(kind)

    def _write(self, text: str) -> None:
        at_line_start = not self.out or self.out[-1] in (_BREAK, _BLANK)
        if at_line_start and self.quote:
            self.out.append("> " * self.quote)
        if not self.pre and (at_line_start or self.out[-1].endswith((" ", "\n"))):
            text = text.lstrip(" ")
        if text:
            self.out.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SILENT:
            self.silent += 1
            return
        if tag in _PARAGRAPHS:
            self._break(_BLANK)
        elif tag in _LINES:
            self._break(_BREAK)
        if tag == "pre":
            self.pre += 1
        elif tag == "blockquote":
            self.quote += 1
        elif tag in ("ul", "ol"):
            self.lists.append([tag == "ol", 0])
        elif tag == "li" and not self.silent:
            ordered, count = self.lists[-1] if self.lists else [False, 0]
            if self.lists:
                self.lists[-1][1] = count + 1
            self._write(f"{count + 1}. " if ordered else "- ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.out)))
        elif tag in ("td", "th") and self.out and self.out[-1] not in (_BREAK, _BLANK):
            self._write(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _LINES and tag not in _PARAGRAPHS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SILENT:
            self.silent = max(0, self.silent - 1)
            return
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        elif tag == "blockquote":
            self.quote = max(0, self.quote - 1)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        elif tag == "a" and self.links:
            self._end_link(*self.links.pop())
        if tag in _PARAGRAPHS:
            self._break(_BLANK)
        elif tag in _LINES and tag != "br":
            self._break(_BREAK)

    def _end_link(self, href: str, start: int) -> None:
        href = href.strip()
        if not href or href.startswith("#"):
            return
        shown = href.removeprefix("mailto:")
        text = "".join(p for p in self.out[start:] if p not in (_BREAK, _BLANK)).strip()
        if text == shown or text == href:
            return
        if not text:
            self._write(shown)
        else:
            self._write(f" ({shown})")

    def handle_data(self, data: str) -> None:
        if self.silent:
            return
        if self.pre:
            for i, line in enumerate(data.split("\n")):
                if i:
                    self._break(_BREAK)
                if line:
                    self._write(line)
            return
        text = _SPACES.sub(" ", data)
        if text.strip() or (self.out and self.out[-1] not in (_BREAK, _BLANK)):
            self._write(text)

    def text(self) -> str:
        lines = "".join(self.out).split("\n")
        # Trailing spaces say nothing; three or more line ends are one blank line.
        joined = "\n".join(line.rstrip() for line in lines)
        return re.sub(r"\n{3,}", "\n\n", joined).strip()


def html_to_text(body_html: str) -> str:
    """The plain-text part for ``body_html`` (see the module docstring for how it reads)."""
    reader = _Reader()
    reader.feed(body_html)
    reader.close()
    return reader.text()
