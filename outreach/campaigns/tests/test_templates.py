"""Rendering: sandbox, strict variables, spintax, both parts, footer, threads, one-line subjects."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.campaigns.models import Campaign, Enrollment, Lead, Message, Step, Variant
from outreach.campaigns.templates import (
    RenderError,
    _text_template,
    choose_variant,
    html_to_text,
    lead_context,
    render_message,
    render_step,
    variant_seed,
)
from outreach.campaigns.unsubscribe import read_token
from outreach.testing import enroll, make_leads

UNSUB = "https://out.example.com/u/token"
POSTAL = "Example Ltd\n1 Main Street, Springfield"


@dataclass
class V:
    subject: str = "Hello {{ first_name }}"
    body_html: str = "<p>Hi {{ first_name }}</p>"
    body_text: str = ""


def render(variant: V, thread_subject: str | None = None, **context: object):
    return render_step(
        variant,
        context,
        seed="lead:1:step:1",
        unsubscribe_url=UNSUB,
        postal_address=POSTAL,
        thread_subject=thread_subject,
    )


def test_it_renders_subject_html_and_a_derived_text_part() -> None:
    email = render(
        V(body_html="<p>Hi <b>{{ first_name }}</b>,</p><p>See you.</p>"), first_name="Ann"
    )
    assert email.subject == "Hello Ann"
    assert "<b>Ann</b>" in email.html
    assert "Hi Ann," in email.text and "<" not in email.text.split("--")[0]


def test_it_puts_the_unsubscribe_link_and_postal_address_in_both_parts() -> None:
    email = render(
        V(body_html="<html><body><p>Hi {{ first_name }}</p></body></html>"), first_name="A"
    )
    assert UNSUB in email.text and "1 Main Street, Springfield" in email.text
    assert f'href="{UNSUB}"' in email.html and "1 Main Street, Springfield" in email.html
    assert email.html.index(UNSUB) < email.html.index("</body>")


def test_it_makes_an_undefined_variable_an_error_not_a_blank() -> None:
    with pytest.raises(RenderError, match="'first_name' is undefined"):
        render(V())
    lenient = V(subject="Hi {{ first_name | default('there') }}", body_html="<p>Hello</p>")
    assert render(lenient).subject == "Hi there"


@pytest.mark.parametrize(
    "source",
    [
        "{{ lead.__class__ }}",
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lead.__init__.__globals__ }}",
    ],
)
def test_it_refuses_python_internals_in_the_sandbox(source: str) -> None:
    with pytest.raises(RenderError, match=r"unsafe|undefined"):
        render(V(body_html=source), lead={"first_name": "Ann"}, first_name="Ann")


def test_it_escapes_lead_data_in_html_but_not_in_text() -> None:
    email = render(V(body_text="Hi {{ first_name }}"), first_name="<script>x</script>")
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert "Hi <script>x</script>" in email.text


def test_it_keeps_the_subject_on_one_line_whatever_the_lead_data() -> None:
    email = render(V(), first_name="Ann\r\nBcc: victim@example.com")
    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.subject == "Hello Ann Bcc: victim@example.com"


def test_it_uses_re_and_the_thread_subject_for_a_blank_follow_up_subject() -> None:
    assert render(V(subject=""), "Quick question", first_name="A").subject == "Re: Quick question"
    assert render(V(subject=""), "Re: Quick question", first_name="A").subject == (
        "Re: Quick question"
    )
    with pytest.raises(RenderError, match="subject is empty"):
        render(V(subject=""), first_name="A")


def test_it_builds_an_html_part_from_a_text_only_variant() -> None:
    email = render(V(body_html="", body_text="Hi {{ first_name }} & co\n\nBye"), first_name="A")
    assert "<p>Hi A &amp; co</p>" in email.html
    assert email.text.startswith("Hi A & co\n\nBye")


def test_it_spins_deterministically_per_seed() -> None:
    variant = V(subject="{Hi|Hello|Hey|Yo} {{ first_name }}")
    first = render(variant, first_name="A")
    assert all(render(variant, first_name="A") == first for _ in range(5))


def test_it_treats_blank_lead_fields_as_undefined() -> None:
    lead = Lead(email="a@b.co", email_domain="b.co", first_name="", custom={"industry": "SaaS"})
    context = lead_context(lead)
    assert "first_name" not in context
    assert context["industry"] == "SaaS" and context["lead"]["email"] == "a@b.co"


@pytest.mark.django_db
def test_it_renders_a_message_with_its_own_unsubscribe_link_and_thread_subject(
    campaign: Campaign,
) -> None:
    lead = make_leads(1)[0]
    Lead.objects.filter(pk=lead.pk).update(first_name="Zoe")
    lead.refresh_from_db()
    enrollment = enroll(campaign, [lead])[0]
    step1, step2 = Step.objects.filter(campaign=campaign).order_by("position")
    first = Message.objects.create(
        enrollment=enrollment,
        step=step1,
        variant=step1.variants.get(),
        campaign=campaign,
        to_email=lead.email,
        to_domain=lead.email_domain,
    )
    rendered = render_message(first)
    assert rendered.subject == "Quick question, Zoe"
    assert render_message(first) == rendered
    token = rendered.text.rsplit("/u/", 1)[1].strip()
    assert read_token(token) == first.pk
    follow_up = Message(
        enrollment=enrollment,
        step=step2,
        variant=step2.variants.get(label="A"),
        campaign=campaign,
        to_email=lead.email,
        to_domain=lead.email_domain,
    )
    assert render_message(follow_up).subject == "Re: Quick question, Zoe"
    Message.objects.filter(pk=first.pk).update(subject="Stored subject")
    assert render_message(follow_up).subject == "Re: Stored subject"
    assert Enrollment.objects.count() == 1


def test_it_picks_variants_by_weight_and_as_the_scheduler_does() -> None:
    from outreach.scheduler import routing

    a = Variant(pk=1, label="A", weight=80)
    b = Variant(pk=2, label="B", weight=20)
    picks = [choose_variant([a, b], f"{n}:7").label for n in range(1000)]
    assert 700 < picks.count("A") < 900
    for n in range(200):
        ours = choose_variant([a, b], variant_seed(n, 7)).pk
        assert ours == routing.choose_variant([(1, 80), (2, 20)], f"{n}:7")


# --- the text part of an HTML-only variant ---------------------------------------------------

# Lead values as they come (line breaks and runs of spaces inside included), but not
# starting like a markdown list item ("- ", "+ ", "1. "): reading a rendered message would
# escape those.
_VALUE = (
    st.text(
        alphabet=string.ascii_letters + string.digits + " \n,.'!?&-@_*()",
        min_size=1,
        max_size=24,
    )
    .map(lambda v: v.strip())
    .filter(lambda v: bool(v) and not re.match(r"[-+]|\d+\.", v))
)
_EXPRESSIONS = [
    "{{ first_name }}",
    "{{ company }}",
    "{{ lead.title }}",
    "{{ nickname | default('there') }}",
    "{{ company | upper }}",
]
_BLOCKS = st.sampled_from(
    [
        "<p>Hi {e},</p>",
        "<p>I saw <b>{e}</b> &amp; thought of you.<br>More soon.</p>",
        '<p>Read <a href="https://example.com/{{{{ slug }}}}">our note</a> on {e}.</p>',
        "<ul><li>{e}</li><li>a second point</li></ul>",
        "<h2>{e} news</h2>",
        "<style>p {{ color: red }}</style><p style='margin:0'>{e}</p>",
        "<div>{e}&nbsp;and {e}</div>",
        "<p><img src='https://example.com/x.png' alt='logo'> Best, {e}</p>",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    blocks=st.lists(st.tuples(_BLOCKS, st.sampled_from(_EXPRESSIONS)), min_size=1, max_size=5),
    first_name=_VALUE,
    company=_VALUE,
    title=_VALUE,
    slug=st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=12),
)
def test_the_text_part_read_from_the_template_is_the_rendered_html_read(
    blocks: list[tuple[str, str]], first_name: str, company: str, title: str, slug: str
) -> None:
    # The text template is read once from the HTML source; it must say what reading every
    # rendered message would (values that are not line-leading markdown, as lead data is).
    body_html = "".join(block.format(e=expr) for block, expr in blocks)
    context = {"first_name": first_name, "company": company, "lead": {"title": title}, "slug": slug}
    assert _text_template(body_html) is not None
    email = render_step(
        V(body_html=body_html), context, seed="s", unsubscribe_url=UNSUB, postal_address=""
    )
    assert email.text.split("\n\n--\n")[0] == html_to_text(email.html.split("\n<p style")[0])


@pytest.mark.parametrize(
    "body_html",
    [
        "<p>Hi {% if first_name %}{{ first_name }}{% endif %}</p>",
        "<p>{{ first_name | safe }}</p>",
        "<p>{{- first_name }}</p>",
        "<p>{# a note #}{{ first_name }}</p>",
        '<p>Hi {{ first_name }}, see <a href="{{ website }}">{{ website }}</a></p>',
    ],
)
def test_other_templates_are_read_per_message(body_html: str) -> None:
    assert _text_template(body_html) is None
    context = {"first_name": "Ann", "website": "https://acme.example"}
    email = render_step(
        V(body_html=body_html), context, seed="s", unsubscribe_url=UNSUB, postal_address=""
    )
    assert "Ann" in email.text
    assert email.text.split("\n\n--\n")[0] == html_to_text(email.html.split("\n<p style")[0])


def test_braces_written_as_entities_stay_text() -> None:
    body_html = "<p>Hi {{ first_name }}, type &#123;&#123; company &#125;&#125; here</p>"
    assert _text_template(body_html) is None
    email = render(V(body_html=body_html), first_name="Ann")
    assert "type {{ company }} here" in email.text


def test_an_html_only_variant_gives_lead_data_to_the_text_part_unescaped() -> None:
    email = render(V(body_html="<p>Hi {{ first_name }} &amp; co</p>"), first_name="<b>A&B</b>")
    assert "&lt;b&gt;A&amp;B&lt;/b&gt;" in email.html
    assert email.text.startswith("Hi <b>A&B</b> & co")
