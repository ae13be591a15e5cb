import pytest

from outreach.campaigns.spintax import SpintaxError, check, spin


def test_it_picks_one_alternative() -> None:
    assert spin("{Hi|Hello|Hey} there", "s") in {"Hi there", "Hello there", "Hey there"}


def test_it_resolves_nested_groups() -> None:
    results = {spin("{a|b {c|d}}", str(seed)) for seed in range(200)}
    assert results == {"a", "b c", "b d"}


def test_it_gives_the_same_text_for_the_same_seed() -> None:
    text = "{Hi|Hello|Hey} {there|friend}, {a|b|c|d|e}"
    assert len({spin(text, "lead:1:step:1") for _ in range(20)}) == 1
    assert len({spin(text, f"lead:{n}:step:1") for n in range(50)}) > 1


def test_it_leaves_jinja_delimiters_alone_even_inside_groups() -> None:
    source = "{Hi {{ first_name }}|Hello {{ first_name }}}{% if x %}{# c #}{% endif %}"
    assert spin(source, "s") in {
        "Hi {{ first_name }}{% if x %}{# c #}{% endif %}",
        "Hello {{ first_name }}{% if x %}{# c #}{% endif %}",
    }


def test_it_keeps_braces_without_alternatives_such_as_css() -> None:
    assert spin("<style>p {color: red}</style>", "s") == "<style>p {color: red}</style>"


def test_it_refuses_an_unclosed_group() -> None:
    with pytest.raises(SpintaxError, match="never closed"):
        spin("{Hi|Hello there", "s")
    assert check("line\n{a|b") is not None
    assert check("{a|b}") is None
