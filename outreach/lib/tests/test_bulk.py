"""lib.bulk: rows inserted without the ORM's compiling are the rows bulk_create writes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, transaction

from outreach.campaigns.models import Lead, Message
from outreach.lib import bulk
from outreach.testing import make_campaign

pytestmark = pytest.mark.django_db
WHEN = datetime(2026, 3, 4, 12, 0, 30, 123456, tzinfo=UTC)


def message(i: int, **fields: object) -> Message:
    return Message(
        kind=Message.Kind.CAMPAIGN,
        to_email=f"p{i}@company.example",
        to_domain="company.example",
        not_before=WHEN,
        expires_at=None,
        quota_day=date(2026, 3, 4),
        created_at=WHEN,
        updated_at=WHEN,
        **fields,
    )


def test_it_writes_what_bulk_create_writes() -> None:
    campaign = make_campaign()
    Message.objects.bulk_create([message(1, campaign=campaign, in_reply_to="<a@b>")])
    bulk.insert(Message, [message(2, campaign=campaign, in_reply_to="<a@b>")])
    first, second = (
        {k: v for k, v in row.items() if k not in ("id", "to_email")}
        for row in Message.objects.order_by("pk").values()
    )
    assert first == second
    assert second["not_before"] == WHEN and second["campaign_id"] == campaign.pk


def test_each_row_keeps_its_own_time_when_rows_share_most_of_them() -> None:
    # Runs of one instant, an equal instant in another zone, and a change in between: each
    # row's time as given, whatever the previous row's.
    paris = WHEN.astimezone(ZoneInfo("Europe/Paris"))
    later = WHEN + timedelta(minutes=1)
    times = [WHEN, WHEN, paris, later, WHEN, None, later]
    bulk.insert(Message, [message(i, lease_expires_at=t) for i, t in enumerate(times)])
    stored = list(Message.objects.order_by("pk").values_list("lease_expires_at", flat=True))
    assert stored == times


def test_it_gives_primary_keys_and_adapts_json() -> None:
    leads = [Lead(email=f"l{i}@x.example", custom={"n": i}) for i in range(1200)]
    bulk.insert(Lead, leads, returning_pks=True, batch_size=500)
    assert [lead.custom for lead in Lead.objects.filter(pk__in=[leads[7].pk])] == [{"n": 7}]
    assert len({lead.pk for lead in leads}) == 1200


def test_it_skips_conflicts_when_asked_and_refuses_them_otherwise() -> None:
    bulk.insert(Lead, [Lead(email="a@x.example")])
    bulk.insert(Lead, [Lead(email="a@x.example"), Lead(email="b@x.example")], ignore_conflicts=True)
    assert Lead.objects.count() == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.insert(Lead, [Lead(email="c@x.example"), Lead(email="a@x.example")])
    assert Lead.objects.count() == 2


def test_a_plain_row_takes_the_defaults_of_the_fields_it_leaves_out() -> None:
    campaign = make_campaign()
    Message.objects.bulk_create([message(1, campaign=campaign)])
    bulk.insert(
        Message,
        [
            {
                "campaign_id": campaign.pk,
                "to_email": "p3@company.example",
                "to_domain": "company.example",
                "not_before": WHEN,
                "quota_day": date(2026, 3, 4),
                "created_at": WHEN,
                "updated_at": WHEN,
            }
        ],
    )
    rows = [
        {k: v for k, v in row.items() if k not in ("id", "to_email")}
        for row in Message.objects.order_by("pk").values()
    ]
    assert rows[0] == rows[1]
    assert rows[1]["state"] == Message.State.SCHEDULED and rows[1]["attempts"] == 0
