"""Security findings of a hands-on probe, one test each: what an attacker tried, and what
outreach does about it now."""

from __future__ import annotations

from datetime import date

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.test import Client

from outreach.lib import secrets
from outreach.pool.models import Mailbox, ProviderAccount, StateChange
from outreach.scheduler.models import DailyCounter
from outreach.testing import make_pool, make_provider

FERNET_KEY = Fernet.generate_key().decode()


@pytest.fixture
def admin_client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "", "x"))
    return client


# 1. Secrets cannot leave through the admin ------------------------------------------------


@pytest.mark.parametrize("name", ["OUTREACH_SECRETS_KEY", "SECRET_KEY", "DATABASE_URL", "HOME"])
def test_it_refuses_env_references_outside_the_secret_prefix(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "the-master-key")
    with pytest.raises(secrets.SecretError, match="may not hold a provider secret"):
        secrets.resolve(f"env:{name}")
    with pytest.raises(secrets.SecretError):
        secrets.env_ref(name)


def test_it_resolves_prefixed_and_allow_listed_names_but_never_its_own_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUTREACH_SECRET_SMTP_PASSWORD", "p1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA")
    monkeypatch.setenv("OUTREACH_SECRETS_KEY", FERNET_KEY)
    monkeypatch.setenv("OUTREACH_SECRET_ENV_ALLOW", "AWS_ACCESS_KEY_ID,OUTREACH_SECRETS_KEY")
    assert secrets.resolve("env:OUTREACH_SECRET_SMTP_PASSWORD") == "p1"
    assert secrets.resolve("env:AWS_ACCESS_KEY_ID") == "AKIA"
    with pytest.raises(secrets.SecretError):
        secrets.resolve("env:OUTREACH_SECRETS_KEY")


def test_the_admin_never_shows_a_stored_secret_and_takes_new_ones_write_only(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTREACH_SECRETS_KEY", FERNET_KEY)
    relay = make_provider(
        "relay",
        "smtp",
        settings={"host": "smtp.example.net"},
        secrets={"password": secrets.encrypt("hunter2-relay"), "api": "env:OUTREACH_SECRET_API"},
    )
    url = f"/admin/pool/provideraccount/{relay.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert relay.secrets["password"] not in html and "OUTREACH_SECRET_API" not in html
    assert "password, api" in html or "api, password" in html  # names only

    form = {"name": "relay", "kind": "smtp", "settings": '{"host": "evil.example"}'}
    form |= {"price_per_1000": "0", "enabled": "on"}
    form |= {"created_at_0": "2026-03-01", "created_at_1": "10:00:00"}
    refused = admin_client.post(url, {**form, "new_secrets": '{"password": "env:SECRET_KEY"}'})
    assert (
        refused.status_code == 200 and "may not hold a provider secret" in refused.content.decode()
    )
    relay.refresh_from_db()
    assert secrets.resolve(relay.secrets["password"]) == "hunter2-relay"

    saved = admin_client.post(url, {**form, "new_secrets": '{"password": "new-pass", "api": null}'})
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    relay.refresh_from_db()
    assert set(relay.secrets) == {"password"}
    assert relay.secrets["password"].startswith("enc:")
    assert secrets.resolve(relay.secrets["password"]) == "new-pass"


def test_the_audit_log_counters_and_mailbox_states_are_read_only_in_the_admin(
    admin_client: Client,
) -> None:
    box = make_pool(1, 1, state=Mailbox.State.PAUSED)[0]
    change = StateChange.objects.create(
        mailbox=box, from_state="active", to_state="paused", reason="bounces", actor="rule:x"
    )
    counter = DailyCounter.objects.create(scope="global", key="*", day=date(2026, 3, 1), used=9)
    for model, pk in (("pool/statechange", change.pk), ("scheduler/dailycounter", counter.pk)):
        assert admin_client.post(f"/admin/{model}/{pk}/change/", {"used": "0"}).status_code == 403
        assert admin_client.post(f"/admin/{model}/{pk}/delete/", {"post": "yes"}).status_code == 403
        assert admin_client.get(f"/admin/{model}/add/").status_code == 403
    assert StateChange.objects.get().reason == "bounces"
    assert DailyCounter.objects.get().used == 9

    page = admin_client.get(f"/admin/pool/mailbox/{box.pk}/change/").content.decode()
    assert 'name="state"' not in page
    assert ProviderAccount.objects.count() == 1
