import csv
import io

from outreach.campaigns.csvsafe import safe_cell, write_rows


def test_it_neutralizes_every_formula_prefix() -> None:
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x","y")'):
        assert safe_cell(value) == "'" + value


def test_it_leaves_ordinary_values_alone() -> None:
    assert safe_cell("Ann") == "Ann"
    assert safe_cell("ann@acme.com") == "ann@acme.com"
    assert safe_cell(None) == ""
    assert safe_cell(42) == "42"


def test_it_writes_csv_whose_cells_never_start_a_formula() -> None:
    out = io.StringIO()
    write_rows(out, [["name", "email"], ["=cmd|' /C calc'!A0", "a@b.co"]])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[1][0] == "'=cmd|' /C calc'!A0"
