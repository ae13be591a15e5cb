"""Lead import from CSV: the dirty fixture, merging, re-import, bad input of every kind."""

from __future__ import annotations

import csv
import io
import tracemalloc
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from outreach.campaigns.addresses import InvalidAddress, normalize_email
from outreach.campaigns.csvsafe import safe_cell
from outreach.campaigns.leadfile import ImportFileError
from outreach.campaigns.leadrows import ImportOptions
from outreach.campaigns.leads import import_leads
from outreach.campaigns.models import Campaign, Enrollment, Lead, Suppression
from outreach.campaigns.suppression import suppress
from outreach.lib import clock

from .conftest import DATA

DIRTY = DATA / "leads_dirty.csv"
HEADER = "Email,First Name,Last Name,Company,Job Title,Time Zone,Industry\n"
pytestmark = pytest.mark.django_db


def write(tmp_path: Path, text: str | bytes, name: str = "leads.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# The fixture: 296 records (CRLF, one with quoted newlines) of which 20 repeat an earlier
# address with other case and spaces, 10 role accounts, 5 disposable domains, 10 invalid
# addresses, 5 unknown time zones, 3 rows with the wrong number of fields, and formula-looking
# names; 248 distinct good addresses.
def test_it_imports_the_dirty_fixture_and_reports_every_reason() -> None:
    report = import_leads(DIRTY)
    assert report.rows == 296
    assert report.imported == 248 == Lead.objects.count()
    assert report.merged_duplicates == 20
    assert dict(report.skipped) == {
        "bad_row": 3,
        "disposable_domain": 5,
        "invalid_email": 10,
        "role_account": 10,
    }
    assert report.invalid_timezones == 5
    assert report.error_count == 33
    lines = {error.line for error in report.errors}
    assert len(lines) == 33 and all(line >= 2 for line in lines)


def test_it_normalizes_addresses_and_merges_duplicates_without_doubling() -> None:
    text = (
        HEADER
        + "  Ann.Smith@ACME.com ,Ann,,Acme,,,\n"
        + "ann.smith@acme.com,Annie,Smith,,CEO,Europe/Paris,SaaS\n"
        + "<ANN.SMITH@acme.com>,,,,,,\n"
    )
    report = import_leads(io.StringIO(text))
    assert (report.imported, report.merged_duplicates) == (1, 2)
    lead = Lead.objects.get()
    assert lead.email == "ann.smith@acme.com" and lead.email_domain == "acme.com"
    # The first row wins; later rows fill blanks only.
    assert (lead.first_name, lead.last_name, lead.title) == ("Ann", "Smith", "CEO")
    assert (lead.timezone, lead.custom) == ("Europe/Paris", {"industry": "SaaS"})


def test_it_changes_nothing_when_the_same_file_is_imported_again() -> None:
    campaign = Campaign.objects.create(slug="c", name="c", postal_address="x")
    first = import_leads(DIRTY, campaign)
    assert first.enroll.enrolled == 248
    before = list(Lead.objects.values_list("email", "first_name", "custom", "updated_at"))
    clock.set_now(clock.now().replace(year=2030))
    again = import_leads(DIRTY, campaign)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 248)
    assert again.enroll.enrolled == 0 and again.enroll.already_enrolled == 248
    assert list(Lead.objects.values_list("email", "first_name", "custom", "updated_at")) == before
    assert Enrollment.objects.count() == 248


def test_it_updates_existing_leads_with_new_non_blank_values_only() -> None:
    import_leads(io.StringIO(HEADER + "bo@acme.com,Bo,Lind,Acme,CTO,,\n"))
    report = import_leads(io.StringIO(HEADER + "bo@acme.com,Bob,,,,,Retail\n"))
    assert (report.imported, report.updated) == (0, 1)
    lead = Lead.objects.get()
    assert (lead.first_name, lead.last_name, lead.title) == ("Bob", "Lind", "CTO")
    assert lead.custom == {"industry": "Retail"}


def test_it_skips_and_counts_suppressed_addresses_and_domains() -> None:
    suppress("gone@acme.com", Suppression.Source.UNSUBSCRIBE)
    suppress("blocked.example", Suppression.Source.MANUAL, kind=Suppression.Kind.DOMAIN)
    text = HEADER + "Gone@acme.com,,,,,,\nx@blocked.example,,,,,,\nok@acme.com,,,,,,\n"
    report = import_leads(io.StringIO(text))
    assert report.skipped["suppressed"] == 2
    assert list(Lead.objects.values_list("email", flat=True)) == ["ok@acme.com"]


def test_it_imports_role_and_disposable_addresses_flagged_when_allowed() -> None:
    text = HEADER + "info@acme.com,,,,,,\nx@mailinator.com,,,,,,\n"
    assert import_leads(io.StringIO(text)).imported == 0
    options = ImportOptions(skip_role_accounts=False, skip_disposable=False)
    report = import_leads(io.StringIO(text), options=options)
    assert report.imported == 2
    assert dict(report.flagged) == {"role_account": 1, "disposable_domain": 1}


def test_it_reports_unknown_time_zones_and_imports_the_lead_without_one() -> None:
    report = import_leads(io.StringIO(HEADER + "a@acme.com,A,,,,Mars/Olympus,\n"))
    assert report.imported == 1 and report.invalid_timezones == 1
    assert "unknown time zone 'Mars/Olympus'" in report.errors[0].reason
    assert report.errors[0].line == 2
    assert Lead.objects.get().timezone == ""


def test_it_keeps_other_columns_as_custom_fields_usable_in_templates() -> None:
    text = "email,Deal Size,2024 Revenue,first name\na@acme.com,big,10M,Ann\n"
    import_leads(io.StringIO(text))
    lead = Lead.objects.get()
    assert lead.first_name == "Ann"
    assert lead.custom == {"deal_size": "big", "field_2024_revenue": "10M"}


def test_it_refuses_a_file_without_an_email_column_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "name,company\nAnn,Acme\n")
    with pytest.raises(ImportFileError, match="no email column"):
        import_leads(path)
    with pytest.raises(CommandError, match="no email column"):
        call_command("leads", "import", str(path))
    assert Lead.objects.count() == 0


def test_it_detects_another_delimiter_from_the_header() -> None:
    report = import_leads(io.StringIO("email;first_name\na@acme.com;Ann\nb@acme.com;Bo\n"))
    assert report.imported == 2
    assert Lead.objects.get(email="a@acme.com").first_name == "Ann"


def test_it_reports_rows_written_with_the_wrong_delimiter() -> None:
    text = "email,first_name,company\na@acme.com,Ann,Acme\nb@acme.com;Bo;Acme\n"
    report = import_leads(io.StringIO(text))
    assert report.imported == 1
    assert report.errors[0].line == 3 and "wrong delimiter" in report.errors[0].reason


def test_it_imports_a_latin1_file_whole(tmp_path: Path) -> None:
    # Excel on Windows saves "CSV" in cp1252: every row is imported, accents intact.
    text = (
        HEADER
        + "a@acme.com,Ann,,,,,\n"
        + "b@acme.com,José,Müller,Société Générale,,,\n"
        + "c@acme.com,Frédéric,,Crédit à la consommation,,,\n"
    )
    report = import_leads(write(tmp_path, text.encode("cp1252")))
    assert (report.imported, report.error_count) == (3, 0)
    jose = Lead.objects.get(email="b@acme.com")
    assert (jose.first_name, jose.last_name, jose.company) == ("José", "Müller", "Société Générale")
    assert Lead.objects.get(email="c@acme.com").company == "Crédit à la consommation"


def test_it_reads_a_latin1_header(tmp_path: Path) -> None:
    report = import_leads(write(tmp_path, "Email,Prénom\nb@acme.com,Zoë\n".encode("latin-1")))
    assert report.imported == 1
    assert Lead.objects.get(email="b@acme.com").custom == {"pr_nom": "Zoë"}


def test_it_reports_a_latin1_row_in_a_utf8_file_and_imports_the_others(tmp_path: Path) -> None:
    data = (
        (HEADER + "a@acme.com,Zoë,,,,,\n").encode()
        + "b@acme.com,Jos\xe9,,,,,\n".encode("latin-1")
        + b"c@acme.com,Cy,,,,,\n"
    )
    report = import_leads(write(tmp_path, data))
    assert report.imported == 2
    assert report.errors[0].line == 3 and "UTF-8" in report.errors[0].reason
    assert Lead.objects.get(email="a@acme.com").first_name == "Zoë"


def test_it_exits_non_zero_on_row_problems_with_strict(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "a@acme.com,Ann,,,,,\nnot-an-address,Bo,,,,,\n")
    out = io.StringIO()
    call_command("leads", "import", str(path), stdout=out)  # without --strict: status 0
    with pytest.raises(CommandError, match="1 row problem"):
        call_command("leads", "import", str(path), "--strict", stdout=out)
    assert Lead.objects.filter(email="a@acme.com").exists()
    clean = write(tmp_path, HEADER + "d@acme.com,Di,,,,,\n", "clean.csv")
    call_command("leads", "import", str(clean), "--strict", stdout=out)


def test_it_survives_a_ten_megabyte_line_in_bounded_memory(tmp_path: Path) -> None:
    huge = "x" * (10 * 1024 * 1024)
    path = write(
        tmp_path,
        HEADER + "a@acme.com,A,,,,,\n" + f"b@acme.com,{huge},,,,,\n" + "c@acme.com,C,,,,,\n",
    )
    tracemalloc.start()
    try:
        report = import_leads(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.imported == 2
    assert report.errors[0].line == 3 and "longer than" in report.errors[0].reason
    assert peak < 5 * 1024 * 1024


def test_it_keeps_quoted_newlines_out_of_stored_fields() -> None:
    text = HEADER + 'a@acme.com,"Ann\r\nBcc: x@evil.example",,"Acme\nInc",,,\nb@acme.com,Bo,,,,,\n'
    report = import_leads(io.StringIO(text))
    assert report.imported == 2
    lead = Lead.objects.get(email="a@acme.com")
    assert (lead.first_name, lead.company) == ("Ann Bcc: x@evil.example", "Acme Inc")
    assert report.rows == 2


def test_it_stores_formula_looking_names_and_exports_them_neutralized(tmp_path: Path) -> None:
    text = HEADER + 'a@acme.com,"=HYPERLINK(""http://evil.example"",""x"")",+1,@SUM,,,\n'
    import_leads(io.StringIO(text))
    lead = Lead.objects.get()
    assert lead.first_name.startswith("=HYPERLINK")
    assert [safe_cell(v) for v in (lead.first_name, lead.last_name, lead.company)] == [
        "'" + lead.first_name,
        "'+1",
        "'@SUM",
    ]
    report = import_leads(io.StringIO(HEADER + "=1+1@x,,,,,,\n"))
    out = io.StringIO()
    report.write_errors_csv(out)
    assert list(csv.reader(io.StringIO(out.getvalue())))[1][1] == "'=1+1@x"


def test_it_keeps_nothing_on_a_dry_run_but_counts_the_same() -> None:
    campaign = Campaign.objects.create(slug="c", name="c", postal_address="x")
    dry = import_leads(DIRTY, campaign, dry_run=True)
    assert Lead.objects.count() == 0 and Enrollment.objects.count() == 0
    real = import_leads(DIRTY, campaign)
    assert dry.summary() | {"dry_run": False} == real.summary()


def test_it_refuses_columns_that_map_to_the_same_field() -> None:
    with pytest.raises(ImportFileError, match="several columns map to email"):
        import_leads(io.StringIO("email,e-mail\na@acme.com,b@acme.com\n"))


def test_it_refuses_an_empty_file() -> None:
    with pytest.raises(ImportFileError, match="empty"):
        import_leads(io.BytesIO(b""))


def test_the_command_imports_enrolls_and_prints_a_summary_with_line_numbers(
    tmp_path: Path,
) -> None:
    campaign = Campaign.objects.create(slug="c", name="c", postal_address="x")
    out = io.StringIO()
    call_command("leads", "import", str(DIRTY), "--campaign", "c", stdout=out)
    text = out.getvalue()
    assert "imported" in text and "248" in text and "enrolled in c" in text
    assert "line " in text and "role account" in text
    assert campaign.enrollments.count() == 248
    errors = tmp_path / "errors.csv"
    out = io.StringIO()
    call_command(
        "leads", "import", str(DIRTY), "--dry-run", "--errors-csv", str(errors), stdout=out
    )
    assert "dry run" in out.getvalue()
    assert len(list(csv.reader(errors.open()))) == 34
    with pytest.raises(CommandError, match="no campaign"):
        call_command("leads", "import", str(DIRTY), "--campaign", "nope")
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.STOPPED)
    with pytest.raises(CommandError, match="is stopped"):
        call_command("leads", "import", str(DIRTY), "--campaign", "c")


@pytest.mark.parametrize(
    "raw",
    [
        "Ann.Smith@ACME.com",
        "a..b@x.com",
        ".a@x.com",
        "a@x..com",
        "a+tag@münchen.de",
        "x@y",
        "a@[192.0.2.1]",
        '"a b"@x.com',
        "a@localhost",
        "üser@x.com",
        "a" * 65 + "@x.com",
        "a@" + "b" * 250 + ".com",
        "a!#$%&'*+/=?^_`{|}~-@x.com",
    ],
)
def test_its_fast_path_agrees_with_email_validator(raw: str) -> None:
    import email_validator

    try:
        info = email_validator.validate_email(raw, check_deliverability=False, allow_smtputf8=False)
        expected = (info.ascii_email or info.normalized).lower()
    except email_validator.EmailNotValidError:
        expected = None
    if expected and len(expected.rpartition("@")[0]) > 64:
        expected = None  # stricter than email-validator 2: RFC 5321's 64 characters
    try:
        assert normalize_email(raw) == expected
    except InvalidAddress:
        assert expected is None


def test_it_refuses_long_local_parts_and_reserved_example_domains_line_by_line(
    tmp_path: Path,
) -> None:
    long_local = "a" * 65
    path = write(
        tmp_path,
        HEADER
        + f"{long_local}@acme.com,Al,,,,,\n"
        + "bob@example.com,Bob,,,,,\n"
        + "ann@mail.example.org,Ann,,,,,\n"
        + "carl@EXAMPLE.NET,Carl,,,,,\n"
        + ("b" * 64 + "@acme.com,Bea,,,,,\n")
        + "dana@example-corp.com,Dana,,,,,\n",
    )
    report = import_leads(path)
    assert report.imported == 2
    assert report.skipped["invalid_email"] == 4
    reasons = {e.line: e.reason for e in report.errors}
    assert "65 characters long; at most 64" in reasons[2]
    assert reasons[3] == "example.com is reserved for examples (RFC 2606): it receives no mail"
    assert reasons[4].startswith("example.org is reserved")
    assert reasons[5].startswith("example.net is reserved")
    assert sorted(Lead.objects.values_list("email", flat=True)) == [
        "b" * 64 + "@acme.com",
        "dana@example-corp.com",
    ]
