"""The text part derived from an HTML body reads as a person would write it."""

from __future__ import annotations

import pytest

from outreach.campaigns.plaintext import html_to_text


def test_it_reads_a_cold_email_as_plain_text() -> None:
    body = """
    <html><head><style>p { margin: 0 }</style><title>x</title></head><body>
    <h2>Quick question</h2>
    <p>Hi Ann,</p>
    <p>I saw <b>Acme</b>&nbsp;&amp; Co. is hiring.<br>Three ideas:</p>
    <ul><li>ship <em>faster</em></li><li>pay less</li></ul>
    <ol><li>first</li><li>second</li></ol>
    <p>Details: <a href="https://example.com/notes?a=1&amp;b=2">our notes</a>,
       <a href="https://example.com">https://example.com</a>,
       <a href="mailto:bob@example.com">bob@example.com</a>.
       <img src="https://example.com/pixel.png" alt="logo"></p>
    <blockquote><p>A quote.</p></blockquote>
    <div>Best,</div><div>Bob</div>
    </body></html>
    """
    assert html_to_text(body) == (
        "Quick question\n\n"
        "Hi Ann,\n\n"
        "I saw Acme & Co. is hiring.\nThree ideas:\n\n"
        "- ship faster\n- pay less\n\n"
        "1. first\n2. second\n\n"
        "Details: our notes (https://example.com/notes?a=1&b=2), https://example.com, "
        "bob@example.com.\n\n"
        "> A quote.\n\n"
        "Best,\nBob"
    )


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>1. not a list</p><p>- nor this</p>", "1. not a list\n\n- nor this"),
        ("<pre>a\n    b</pre>", "a\n    b"),
        ("<p>a <a href='#top'>back</a></p>", "a back"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("plain   text\nwith breaks", "plain text with breaks"),
        ("<script>alert(1)</script><!-- note --><p>x</p>", "x"),
    ],
)
def test_it_writes_what_it_reads_without_markup_characters(html: str, text: str) -> None:
    assert html_to_text(html) == text
