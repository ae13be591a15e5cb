"""Security findings of a hands-on probe, one test each: what an attacker tried, and what
outreach does about it now."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import time_machine
from axes.models import AccessFailureLog
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from outreach.alerts import rules
from outreach.alerts.models import Alert
from outreach.campaigns.suppression import is_suppressed
from outreach.campaigns.unsubscribe import make_token
from outreach.events.models import DeadLetter, Event, RefusedWebhook
from outreach.events.tests.conftest import make_sent_message, postmark_spam_complaint
from outreach.lib import clock, env, secrets
from outreach.metrics import prometheus
from outreach.models import Heartbeat
from outreach.pool.models import Mailbox, ProviderAccount, StateChange
from outreach.scheduler.models import DailyCounter
from outreach.testing import make_pool, make_provider

FERNET_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Dozens of logins here: the real hasher's deliberate slowness would cost minutes."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


# 2-4. Webhooks: credentials first, nothing kept of what fails them, no secret no service -----

POSTMARK_URL = "/webhooks/postmark/tracking/"
HOOKS = ("hooks", "a-long-webhook-secret")


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def webhook_secret(settings: Any) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": [":".join(HOOKS)]}


def post(body: bytes, **headers: str) -> Any:
    return Client().post(POSTMARK_URL, body, content_type="application/json", headers=headers)


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_secret")
def test_it_counts_wrongly_authenticated_webhooks_and_stores_none_of_them() -> None:
    megabyte = b'{"pad": "' + b"x" * (1024 * 1024 - 20) + b'"}'
    oversized = megabyte + b" " * 1024
    for _ in range(30):
        assert post(megabyte, **basic("hooks", "guess")).status_code == 403
    # Too large and unauthenticated: refused for its credentials, before its size.
    assert post(oversized, **basic("hooks", "guess")).status_code == 403

    assert DeadLetter.objects.count() == 0 and Event.objects.count() == 0
    assert sum(RefusedWebhook.objects.values_list("count", flat=True)) == 31
    assert (
        'outreach_webhook_refused_total{endpoint="/webhooks/postmark/tracking/",status="403"} 31'
        in prometheus.render()
    )
    assert rules.check_refused_webhooks()
    alert = Alert.objects.get(kind="webhooks_refused")
    assert "31 provider webhook request(s) refused" in alert.text


@pytest.mark.django_db
@pytest.mark.usefixtures("webhook_secret")
def test_it_keeps_at_most_the_cap_of_dead_letters_per_endpoint(settings: Any) -> None:
    settings.OUTREACH_DEAD_LETTER_CAP = 3
    for n in range(5):
        assert post(b'{"n": %d, "broken"' % n, **basic(*HOOKS)).status_code == 400

    bodies = list(DeadLetter.objects.order_by("id").values_list("body", flat=True))
    assert [json.loads(b.removesuffix(', "broken"') + "}")["n"] for b in bodies] == [2, 3, 4]


@pytest.mark.django_db
def test_a_dead_letter_refused_for_its_credentials_is_never_replayed(settings: Any) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": [":".join(HOOKS)]}
    forged = postmark_spam_complaint("ceo@globex.com", "883953f4-6105-42a2-a16a-77a8eac79483")
    letter = DeadLetter.objects.create(
        endpoint=POSTMARK_URL,
        headers={"Content-Type": "application/json"},
        body=json.dumps(forged),
        error="wrong basic auth credentials",
        status_code=403,
    )

    with pytest.raises(CommandError, match="still refused"):
        call_command("events", "replay", str(letter.pk), stdout=StringIO(), stderr=StringIO())

    assert not is_suppressed("ceo@globex.com")
    assert Event.objects.count() == 0
    letter.refresh_from_db()
    assert letter.replayed_at is None


@pytest.mark.django_db
def test_webhooks_answer_503_in_production_until_a_secret_is_set(settings: Any) -> None:
    settings.PRODUCTION = True
    settings.ANYMAIL = {"WEBHOOK_SECRET": None}
    complaint = postmark_spam_complaint("ceo@globex.com", "883953f4-6105-42a2-a16a-77a8eac79483")

    response = post(json.dumps(complaint).encode())

    assert response.status_code == 503
    assert "OUTREACH_WEBHOOK_SECRET" in response.json()["error"]
    assert not is_suppressed("ceo@globex.com")
    assert DeadLetter.objects.count() == 0 and Event.objects.count() == 0
    assert RefusedWebhook.objects.get().status_code == 503


@pytest.mark.django_db
def test_doctor_marks_a_missing_webhook_secret_critical_even_on_a_sandbox_pool(
    settings: Any,
) -> None:
    settings.ANYMAIL = {"WEBHOOK_SECRET": None}
    make_pool(1, 1)
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("doctor", "--json", stdout=out)
    findings = json.loads(out.getvalue())["findings"]
    assert {"webhooks"} <= {f["area"] for f in findings if f["severity"] == "critical"}


# 7. Unsubscribe links outlive a key rotation ----------------------------------------------


@pytest.mark.django_db
def test_a_60_day_old_unsubscribe_link_works_after_the_keys_rotate(settings: Any) -> None:
    clock.set_now(clock.now() - timedelta(days=60))
    sent = make_sent_message()
    token = make_token(sent.message.pk)  # in the message sent 60 days ago
    clock.set_now(None)
    old_key = settings.OUTREACH_UNSUBSCRIBE_KEY

    settings.SECRET_KEY = "a-fresh-site-key-" + "s" * 40
    settings.OUTREACH_UNSUBSCRIBE_KEY = "a-fresh-unsubscribe-key-" + "u" * 40
    settings.OUTREACH_UNSUBSCRIBE_KEY_FALLBACKS = [old_key]

    page = Client().get(f"/u/{token}")
    assert page.status_code == 200 and sent.message.to_email in page.content.decode()
    done = Client().post(f"/u/{token}", {"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert is_suppressed(sent.message.to_email)

    settings.OUTREACH_UNSUBSCRIBE_KEY_FALLBACKS = []
    assert Client().get(f"/u/{token}").status_code == 404  # a key dropped is a key revoked


# 8. Production hardening ---------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "outreach.env.example"
REAL_VALUES = {
    "SECRET_KEY": "kq3V8xYb2L-9dPq7Zr4Tw1Nc6Hs0Jf5Ug8Ae3Mi2Xo7Rv9Bt4Kl1Wy6Pn0Sd5Qh",
    "OUTREACH_UNSUBSCRIBE_KEY": "u8Fh2Kd9Lq4Wz7Xc1Vb6Nm3Ty5Gr0Ep8Js2Ha7Ck4Qd9Lw1Zx6Vb3Nm5Ty0Gr",
    "OUTREACH_WEBHOOK_SECRET": "hooks:Zr4Tw1Nc6Hs0Jf5Ug8Ae3Mi2",
    "OUTREACH_BASE_URL": "https://mail-ops.acme-outreach.net",
    "ALLOWED_HOSTS": "mail-ops.acme-outreach.net",
    "CSRF_TRUSTED_ORIGINS": "https://mail-ops.acme-outreach.net",
}


def example_env() -> dict[str, str]:
    """The variables deploy/outreach.env.example sets, as a server copying it would have."""
    values = {}
    for line in EXAMPLE.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def outreach(
    tmp_path: Path, environ: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "DATABASE"))}
    base |= {"OUTREACH_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db"}
    return subprocess.run(
        [sys.executable, "-m", "outreach", *args],
        env={**base, **environ},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_placeholder_of_the_example_env_file_is_recognized() -> None:
    example = example_env()
    flagged = set(env.placeholders(example))
    assert flagged == set(REAL_VALUES)
    assert env.placeholders({**example, **REAL_VALUES}) == []


def test_it_refuses_to_start_in_production_with_placeholders_or_debug(tmp_path: Path) -> None:
    as_copied = outreach(tmp_path, example_env(), "check")
    assert as_copied.returncode != 0
    assert "SECRET_KEY" in as_copied.stderr and "placeholder" in as_copied.stderr

    debug = outreach(tmp_path, {**example_env(), **REAL_VALUES, "DEBUG": "true"}, "check")
    assert debug.returncode != 0 and "DEBUG must be off in production" in debug.stderr


def test_check_deploy_finds_nothing_to_warn_about_in_production(tmp_path: Path) -> None:
    result = outreach(tmp_path, {**example_env(), **REAL_VALUES}, "check", "--deploy")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout, result.stdout
    assert "WARNING" not in result.stderr + result.stdout


@pytest.mark.django_db
def test_healthz_tells_anonymous_callers_only_ok_or_error(client: Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    Heartbeat.objects.create(
        name="worker",
        host="db-box-7",
        pid=4242,
        running=True,
        beat_at=clock.now() - timedelta(hours=1),
    )
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json() == {"status": "error"}
    client.force_login(User.objects.create_user("ops", is_staff=True))
    assert "db-box-7" in client.get("/healthz").content.decode()


@pytest.mark.django_db
def test_metrics_takes_its_token_only_as_a_bearer_header(client: Client, settings: Any) -> None:
    settings.OUTREACH_METRICS_TOKEN = "metrics-token-0123456789"
    assert client.get("/metrics", {"token": "metrics-token-0123456789"}).status_code == 403
    ok = client.get("/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"})
    assert ok.status_code == 200


# 9. Crafted query strings get a 400 page, not a 500 ------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/audit/?before=2020-02-30T00:00:00~5", "before"),
        ("/events/?before=2020-02-30T00:00:00~5", "before"),
        ("/events/?before=2020-01-01T00:00:00~99999999999999999999", "before"),
        ("/events/?mailbox=99999999999999999999", "mailbox"),
        ("/events/?campaign=-1", "campaign"),
        ("/audit/?mailbox=99999999999999999999", "mailbox"),
        ("/audit/?mailbox=abc", "mailbox"),
        ("/mailboxes/?state=exploded", "state"),
        ("/alerts/?show=everything", "show"),
        ("/suppression/?q=" + "x" * 300, "q"),
    ],
)
def test_a_crafted_query_string_gets_a_400_page_naming_the_parameter(
    admin_client: Client, url: str, parameter: str
) -> None:
    admin_client.raise_request_exception = False
    response = admin_client.get(url)
    assert response.status_code == 400
    assert f"<code>{parameter}</code>" in response.content.decode()


# 6. Passwords pass Django's validators everywhere, the CLI included ---------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("a", "too short"),
        ("password123", "too common"),
        ("83749501268", "entirely numeric"),
        ("operations-lead1", "too similar to the username"),
    ],
)
def test_ensure_admin_refuses_a_weak_password(
    monkeypatch: pytest.MonkeyPatch, password: str, why: str
) -> None:
    monkeypatch.setenv("OUTREACH_ADMIN_PASSWORD", password)
    with pytest.raises(CommandError, match=why):
        call_command("ensure_admin", "--username", "operations-lead", stdout=StringIO())
    assert not User.objects.filter(username="operations-lead").exists()

    lead = User.objects.create_superuser("operations-lead", "", "an-old-but-decent-passphrase")
    with pytest.raises(CommandError, match=why):  # nor as a new password
        call_command("ensure_admin", "--username", "operations-lead", stdout=StringIO())
    lead.refresh_from_db()
    assert lead.check_password("an-old-but-decent-passphrase")


@pytest.mark.django_db
def test_the_admin_password_form_refuses_a_common_password(admin_client: Client) -> None:
    root = User.objects.get(username="root")
    response = admin_client.post(
        f"/admin/auth/user/{root.pk}/password/",
        {"password1": "password123", "password2": "password123"},
    )
    assert response.status_code == 200 and "too common" in response.content.decode()
    root.refresh_from_db()
    assert not root.check_password("password123")


# 5. Brute force: lockout by user and address, failures on the audit page; TOTP for staff ----

LOGIN = "/accounts/login/"
GOOD = "correct horse battery staple"


def log_in(client: Client, password: str) -> Any:
    return client.post(LOGIN, {"username": "boss", "password": password, "next": "/"})


@pytest.mark.django_db
def test_fifty_wrong_passwords_lock_out_the_right_one_until_the_cool_off(
    admin_client: Client,
) -> None:
    User.objects.create_user("boss", password=GOOD, is_staff=True)
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(50):
        assert log_in(attacker, "guess").status_code in (200, 429)

    locked = log_in(attacker, GOOD)
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in attacker.session
    # The real owner, elsewhere, is not locked out by someone else's guesses.
    assert log_in(Client(REMOTE_ADDR="198.51.100.7"), GOOD).status_code == 302

    audit = admin_client.get("/audit/").content.decode()
    assert "203.0.113.9" in audit and "boss" in audit

    with time_machine.travel(timezone.now() + timedelta(minutes=16), tick=False):
        assert log_in(attacker, GOOD).status_code == 302


def totp_now(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


@pytest.mark.django_db
def test_a_staff_user_with_a_totp_device_gives_a_code_after_the_password(settings: Any) -> None:
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    boss = User.objects.create_user("boss", password=GOOD, is_staff=True)
    device = TOTPDevice.objects.create(user=boss, name="phone", confirmed=True)
    client = Client()

    assert log_in(client, GOOD).status_code == 302
    held = client.get("/campaigns/")
    assert held.status_code == 302 and held["Location"].startswith("/accounts/2fa/?next=")
    assert client.get("/admin/").status_code == 302  # the admin too

    wrong = client.post("/accounts/2fa/", {"token": "000000", "next": "/campaigns/"})
    assert "wrong or expired code" in wrong.content.decode()
    right = client.post("/accounts/2fa/", {"token": totp_now(device), "next": "/campaigns/"})
    assert right.status_code == 302 and right["Location"] == "/campaigns/"
    assert client.get("/campaigns/").status_code == 200


@pytest.mark.django_db
def test_outreach_require_2fa_makes_staff_set_up_a_device(settings: Any) -> None:
    settings.OUTREACH_REQUIRE_2FA = True
    User.objects.create_user("boss", password=GOOD, is_staff=True)
    User.objects.create_user("viewer", password=GOOD, is_staff=False)
    viewer = Client()
    viewer.force_login(User.objects.get(username="viewer"))
    assert viewer.get("/campaigns/").status_code == 200  # compulsory for staff only

    client = Client()
    assert log_in(client, GOOD).status_code == 302
    assert client.get("/").status_code == 302
    setup = client.get("/accounts/2fa/").content.decode()
    assert "otpauth://totp/" in setup
    device = TOTPDevice.objects.get(user__username="boss", confirmed=False)

    client.post("/accounts/2fa/", {"token": totp_now(device), "next": "/"})

    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_failed_logins_are_kept_thirty_days() -> None:
    recent = AccessFailureLog.objects.create(username="guess-1", ip_address="203.0.113.9")
    old = AccessFailureLog.objects.create(username="guess-2", ip_address="203.0.113.9")
    AccessFailureLog.objects.filter(pk=old.pk).update(
        attempt_time=timezone.now() - timedelta(days=31)
    )

    rules.periodic_pass()

    assert list(AccessFailureLog.objects.values_list("pk", flat=True)) == [recent.pk]
