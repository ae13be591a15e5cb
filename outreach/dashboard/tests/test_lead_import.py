"""Lead import by upload: the same per-row report as the command."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from outreach.campaigns.models import Enrollment, Lead
from outreach.dashboard.tests.conftest import Activity

CSV = (
    "email,first_name,company\n"
    "Ann@Acme.com,Ann,Acme\n"
    "ann@acme.com ,Ann,Acme\n"
    "info@acme.com,Info,Acme\n"
    "not an address,X,Y\n"
    'carl@beta.io,=HYPERLINK("http://x"),Beta\n'
)


def upload(client: Client, **data: object):
    return client.post(
        reverse("dashboard:lead_import"),
        {"file": SimpleUploadedFile("leads.csv", CSV.encode(), "text/csv"), **data},
    )


def test_it_imports_an_uploaded_csv_and_reports_each_bad_row(
    activity: Activity, staff_client: Client
) -> None:
    before = Lead.objects.count()
    response = upload(staff_client, campaign="launch")
    assert response.status_code == 200
    summary = response.context["summary"]
    assert summary["imported"] == 2
    assert summary["merged_duplicates"] == 1
    lines = {line for line, _ in response.context["errors"]}
    assert {4, 5} <= lines  # the role account and the bad address, by line number
    assert Lead.objects.count() == before + 2
    assert Enrollment.objects.filter(lead__email="ann@acme.com", campaign__slug="launch").exists()


def test_it_changes_nothing_on_a_dry_run(activity: Activity, staff_client: Client) -> None:
    before = Lead.objects.count()
    response = upload(staff_client, dry_run="on")
    assert response.context["summary"]["imported"] == 2
    assert "Dry run" in response.content.decode()
    assert Lead.objects.count() == before


def test_it_refuses_a_file_it_cannot_import(activity: Activity, staff_client: Client) -> None:
    response = staff_client.post(
        reverse("dashboard:lead_import"),
        {"file": SimpleUploadedFile("leads.csv", b"name;company\nx;y\n", "text/csv")},
    )
    assert response.status_code == 400
    assert "Import refused" in response.content.decode()
