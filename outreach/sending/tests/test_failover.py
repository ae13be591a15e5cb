"""Failover: the primary fails, the standby takes over, the primary recovers, sends go back."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from outreach.alerts.models import Alert, ProviderHealth
from outreach.campaigns.models import Message
from outreach.lib import clock
from outreach.pool.models import ProviderAccount, StateChange
from outreach.providers.smtp.testserver import SmtpTestServer
from outreach.sending.engine import send_due, sync_provider_health
from outreach.sending.models import ProviderCircuit
from outreach.sending.tests.helpers import SMTP_USER, claimed_campaign_messages, smtp_account

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
OUTAGE = "421 4.3.2 Service not available, closing transmission channel"


@pytest.fixture
def standby_server(
    tls: tuple[ssl.SSLContext, Path], smtp_password: str
) -> Iterator[SmtpTestServer]:
    server = SmtpTestServer(tls_context=tls[0], users={SMTP_USER: smtp_password}).start()
    yield server
    server.stop()


@pytest.fixture
def accounts(
    smtp_server: SmtpTestServer, standby_server: SmtpTestServer, ca_file: Path
) -> tuple[ProviderAccount, ProviderAccount]:
    clock.set_now(T0)
    standby = smtp_account("standby", standby_server.port, ca_file)
    primary = smtp_account("primary", smtp_server.port, ca_file)
    primary.standby = standby
    primary.save()
    return primary, standby


def _circuit(account: ProviderAccount) -> str:
    circuit = ProviderCircuit.objects.filter(provider_account=account).first()
    return circuit.state if circuit else "closed"


def _tags(server: SmtpTestServer) -> list[int]:
    return [int(r.message["X-Outreach-Message"]) for r in server.received]


def test_it_fails_over_to_the_standby_and_back(
    accounts: tuple[ProviderAccount, ProviderAccount],
    smtp_server: SmtpTestServer,
    standby_server: SmtpTestServer,
) -> None:
    primary, standby = accounts
    smtp_server.handler.data_faults.extend([OUTAGE] * 5)

    # 1. The primary fails five times in a row: its circuit opens.
    failing = claimed_campaign_messages(5, provider=primary)
    send_due()
    assert {m.state for m in Message.objects.filter(pk__in=[m.pk for m in failing])} == {"retry"}
    assert _circuit(primary) == "open"

    # 2. While it is open, new messages go through the standby.
    during = claimed_campaign_messages(3, provider=primary, lead_domain="b.example.org")
    send_due()
    assert sorted(_tags(standby_server)) == [m.pk for m in during]
    assert Message.objects.get(pk=during[0].pk).provider_account == standby

    # 3. The primary has recovered; after the open period one probe goes to it and closes
    #    the circuit, and from then on the primary sends again.
    clock.advance(timedelta(minutes=5))
    send_due()
    assert _circuit(primary) == "closed"
    assert len(smtp_server.received) >= 1
    after = claimed_campaign_messages(3, provider=primary, lead_domain="c.example.org")
    send_due()
    assert set(_tags(smtp_server)) >= {m.pk for m in after}

    assert Message.objects.exclude(state=Message.State.SENT).count() == 0
    every = _tags(smtp_server) + _tags(standby_server)
    assert sorted(every) == sorted(set(every))  # nothing went out twice

    changes = StateChange.objects.filter(provider=primary).order_by("at", "id")
    assert [(c.from_state, c.to_state) for c in changes] == [
        ("closed", "open"),
        ("half_open", "closed"),
    ]
    assert "5 transient failures" in changes[0].reason
    kinds = set(Alert.objects.values_list("kind", flat=True))
    assert {"provider_problem", "provider_recovered"} <= kinds


def test_it_reopens_the_circuit_when_the_probe_fails(
    accounts: tuple[ProviderAccount, ProviderAccount], smtp_server: SmtpTestServer
) -> None:
    primary, _ = accounts
    smtp_server.handler.data_faults.extend([OUTAGE] * 6)
    claimed_campaign_messages(5, provider=primary)
    send_due()
    assert _circuit(primary) == "open"

    clock.advance(timedelta(minutes=5))
    claimed_campaign_messages(1, provider=primary, lead_domain="b.example.org")
    send_due()

    circuit = ProviderCircuit.objects.get(provider_account=primary)
    assert circuit.state == "open"
    assert circuit.retry_at is not None and circuit.retry_at > clock.now()


def test_it_holds_messages_when_the_primary_is_down_and_there_is_no_standby(
    accounts: tuple[ProviderAccount, ProviderAccount], smtp_server: SmtpTestServer
) -> None:
    primary, _ = accounts
    primary.standby = None
    primary.save()
    smtp_server.handler.data_faults.extend([OUTAGE] * 5)
    claimed_campaign_messages(5, provider=primary)
    send_due()

    waiting = claimed_campaign_messages(2, provider=primary, lead_domain="b.example.org")
    assert send_due() == 0
    assert set(
        Message.objects.filter(pk__in=[m.pk for m in waiting]).values_list("state", flat=True)
    ) == {"claimed"}


def test_it_fails_over_when_the_provider_reports_itself_unhealthy(
    accounts: tuple[ProviderAccount, ProviderAccount], standby_server: SmtpTestServer
) -> None:
    primary, _ = accounts
    ProviderHealth.objects.create(
        provider_account=primary,
        healthy=False,
        problems=["EnforcementStatus is PROBATION"],
        checked_at=T0,
    )

    assert sync_provider_health() == 1
    messages = claimed_campaign_messages(2, provider=primary)
    send_due()

    assert sorted(_tags(standby_server)) == [m.pk for m in messages]
    change = StateChange.objects.get(provider=primary)
    assert "PROBATION" in change.reason
