"""`outreach apply`: the pool file is the source of truth, strictly parsed, applied atomically."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from outreach.events.inbox import imap_config
from outreach.pool.config import parse
from outreach.pool.config_apply import apply
from outreach.pool.config_spec import ConfigError
from outreach.pool.models import Domain, Mailbox, PoolSettings, ProviderAccount, StateChange

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "pool.toml"

SMALL = """
timezone = "Europe/Berlin"

[limits]
mailbox_daily_cap = 35
domain_daily_cap = 200

[warmup]
seeds = ["seed@seeds.example.net"]

[providers.ses]
kind = "ses"
region = "eu-west-1"
configuration_set = "outreach"
access_key_id = { env = "OUTREACH_SECRET_AWS_KEY_ID" }
secret_access_key = { env = "OUTREACH_SECRET_AWS_KEY" }
standby = "backup"
price_per_1000 = 0.10

[providers.backup]
kind = "mailgun"
api_key = { env = "OUTREACH_SECRET_MAILGUN_KEY" }
sender_domain = "mg.acme-mail.com"

[[domains]]
name = "acme-mail.com"
provider = "ses"

[[domains.mailboxes]]
address = "Anna@Acme-Mail.com"
display_name = "Anna"

[[domains.mailboxes]]
address = "ben@acme-mail.com"
warmup = false
"""


def run_apply(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("apply", str(path), *args, stdout=out)
    return out.getvalue()


def snapshot() -> list[tuple[object, ...]]:
    return [
        *PoolSettings.objects.values_list("timezone", "limits_json"),
        *ProviderAccount.objects.order_by("name").values_list(
            "name", "kind", "settings", "enabled"
        ),
        *Domain.objects.order_by("name").values_list("name", "state", "daily_cap"),
        *Mailbox.objects.order_by("address").values_list("address", "state", "daily_cap"),
    ]


@pytest.mark.django_db
def test_it_applies_the_example_pool_and_reports_no_changes_the_second_time() -> None:
    first = run_apply(EXAMPLE)
    assert "create domain northwind-mail.com" in first
    assert Domain.objects.count() == 10
    assert Mailbox.objects.count() == 30
    assert Mailbox.objects.filter(state="active").count() == 24
    assert Mailbox.objects.filter(state="warming", warmup_started_on__isnull=False).count() == 6
    second = run_apply(EXAMPLE)
    assert second.strip() == f"{EXAMPLE}: no changes"


@pytest.mark.django_db
def test_it_creates_providers_with_standby_and_secret_references(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(SMALL)
    run_apply(path)
    ses = ProviderAccount.objects.get(name="ses")
    assert ses.standby == ProviderAccount.objects.get(name="backup")
    assert ses.secrets == {
        "access_key_id": "env:OUTREACH_SECRET_AWS_KEY_ID",
        "secret_access_key": "env:OUTREACH_SECRET_AWS_KEY",
    }
    assert ses.settings == {"configuration_set": "outreach", "region": "eu-west-1"}
    anna = Mailbox.objects.get(address="anna@acme-mail.com")  # normalized
    assert anna.state == "warming" and anna.display_name == "Anna"
    assert Mailbox.objects.get(address="ben@acme-mail.com").state == "active"
    pool = PoolSettings.load()
    assert pool.timezone == "Europe/Berlin"
    assert pool.limits.mailbox_daily_cap == 35
    assert pool.limits.global_daily_cap == 1500  # default kept
    assert pool.seed_addresses == ["seed@seeds.example.net"]


@pytest.mark.django_db
def test_it_encrypts_plain_secrets_and_stays_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outreach.lib import secrets

    monkeypatch.setenv("OUTREACH_SECRETS_KEY", secrets.generate_key())
    path = tmp_path / "pool.toml"
    path.write_text(
        SMALL.replace('api_key = { env = "OUTREACH_SECRET_MAILGUN_KEY" }', 'api_key = "key-123"')
    )
    run_apply(path)
    stored = ProviderAccount.objects.get(name="backup").secrets["api_key"]
    assert stored.startswith("enc:") and "key-123" not in stored
    assert secrets.resolve(stored) == "key-123"
    assert run_apply(path).strip().endswith("no changes")


SEEDS = 'seeds = ["seed@seeds.example.net"]'
SEED_WITH_IMAP = (
    'seeds = ["seed@seeds.example.net", { address = "Gmail.Seed@seeds.example.net", '
    'imap_host = "imap.seeds.example.net", imap_security = "ssl", imap_password = "app-pass", '
    'spam_folders = ["[Gmail]/Spam"] }]'
)


@pytest.mark.django_db
def test_it_stores_a_seed_with_imap_access_and_its_password_encrypted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outreach.lib import secrets

    monkeypatch.setenv("OUTREACH_SECRETS_KEY", secrets.generate_key())
    path = tmp_path / "pool.toml"
    path.write_text(SMALL.replace(SEEDS, SEED_WITH_IMAP))
    run_apply(path)
    plain, seed = PoolSettings.load().seed_addresses
    assert plain == "seed@seeds.example.net"
    assert seed["address"] == "gmail.seed@seeds.example.net"
    assert seed["imap_host"] == "imap.seeds.example.net"
    assert seed["spam_folders"] == ["[Gmail]/Spam"]
    assert seed["imap_password"].startswith("enc:")
    assert secrets.resolve(seed["imap_password"]) == "app-pass"
    assert run_apply(path).strip().endswith("no changes")


@pytest.mark.django_db
def test_it_refuses_plain_secrets_without_an_encryption_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OUTREACH_SECRETS_KEY", raising=False)
    path = tmp_path / "pool.toml"
    path.write_text(
        SMALL.replace('api_key = { env = "OUTREACH_SECRET_MAILGUN_KEY" }', 'api_key = "key-123"')
    )
    with pytest.raises(CommandError, match="OUTREACH_SECRETS_KEY"):
        run_apply(path)
    assert ProviderAccount.objects.count() == 0


@pytest.mark.django_db
def test_it_retires_a_removed_mailbox_instead_of_deleting_it(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(SMALL)
    run_apply(path)
    path.write_text(SMALL.split('[[domains.mailboxes]]\naddress = "ben')[0])
    out = run_apply(path)
    assert "retire mailbox ben@acme-mail.com" in out
    ben = Mailbox.objects.get(address="ben@acme-mail.com")
    assert ben.state == "retired"
    change = StateChange.objects.filter(mailbox=ben).first()
    assert change is not None and change.to_state == "retired" and change.actor == "config:apply"


@pytest.mark.django_db
def test_it_does_not_override_a_state_set_by_the_health_rules(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(SMALL)
    run_apply(path)
    Mailbox.objects.filter(address="ben@acme-mail.com").update(state="paused")
    assert run_apply(path).strip().endswith("no changes")
    assert Mailbox.objects.get(address="ben@acme-mail.com").state == "paused"


@pytest.mark.django_db
def test_a_dry_run_shows_the_changes_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(SMALL)
    out = run_apply(path, "--dry-run")
    assert "would create mailbox anna@acme-mail.com (warming)" in out
    assert Mailbox.objects.count() == 0 and ProviderAccount.objects.count() == 0


RELAY = """
[providers.relay]
kind = "smtp"
host = "smtp.acme-relay.example"
port = 587
security = "starttls"
username = "outreach"
password = { env = "OUTREACH_SECRET_RELAY" }
timeout = 20
ca_file = "certs/relay-ca.pem"
max_per_connection = 50
local_hostname = "mta.acme-mail.com"
"""


@pytest.mark.django_db
def test_it_takes_every_option_of_the_smtp_sender(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text(SMALL + RELAY)
    run_apply(path)
    relay = ProviderAccount.objects.get(name="relay")
    assert relay.settings == {
        "host": "smtp.acme-relay.example",
        "port": 587,
        "security": "starttls",
        "username": "outreach",
        "timeout": 20,
        "ca_file": "certs/relay-ca.pem",
        "max_per_connection": 50,
        "local_hostname": "mta.acme-mail.com",
    }
    assert relay.secrets == {"password": "env:OUTREACH_SECRET_RELAY"}


BAD_INPUT = [
    (
        "smtp port as a string",
        SMALL + RELAY.replace("port = 587", 'port = "587"'),
        "providers.relay.port: expected a whole number",
    ),
    (
        "smtp connection reuse of zero",
        SMALL + RELAY.replace("max_per_connection = 50", "max_per_connection = 0"),
        "providers.relay.max_per_connection: must be positive",
    ),
    (
        "smtp security unknown",
        SMALL + RELAY.replace('security = "starttls"', 'security = "ssl"'),
        "providers.relay.security: expected one of starttls, tls, none",
    ),
    (
        "smtp timeout negative",
        SMALL + RELAY.replace("timeout = 20", "timeout = -1"),
        "providers.relay.timeout: expected a positive number of seconds",
    ),
    (
        "unknown key",
        SMALL.replace("domain_daily_cap = 200", "domain_daily_kap = 200"),
        "limits.domain_daily_kap: unknown key",
    ),
    (
        "malformed address",
        SMALL.replace('"ben@acme-mail.com"', '"ben@@acme-mail.com"'),
        "domains[0].mailboxes[1].address: malformed address",
    ),
    (
        "undeclared domain",
        SMALL.replace('"ben@acme-mail.com"', '"ben@other-mail.com"'),
        "not on domain acme-mail.com",
    ),
    (
        "duplicate mailbox",
        SMALL.replace('"ben@acme-mail.com"', '"anna@acme-mail.com"'),
        "duplicate mailbox anna@acme-mail.com",
    ),
    (
        "negative cap",
        SMALL.replace("mailbox_daily_cap = 35", "mailbox_daily_cap = -5"),
        "limits.mailbox_daily_cap: must not be negative",
    ),
    (
        "non-integer cap",
        SMALL.replace("mailbox_daily_cap = 35", "mailbox_daily_cap = 35.5"),
        "limits.mailbox_daily_cap: expected a whole number",
    ),
    (
        "string cap",
        SMALL.replace("domain_daily_cap = 200", 'domain_daily_cap = "200"'),
        "limits.domain_daily_cap: expected a whole number",
    ),
    (
        "undefined provider",
        SMALL.replace('provider = "ses"', 'provider = "sess"'),
        "domains[0].provider: provider 'sess' is not defined",
    ),
    (
        "undefined standby",
        SMALL.replace('standby = "backup"', 'standby = "nope"'),
        "providers.ses.standby: provider 'nope' is not defined",
    ),
    (
        "unknown provider kind",
        SMALL.replace('kind = "mailgun"', 'kind = "sendmail"'),
        "providers.backup.kind: expected one of",
    ),
    (
        "provider option of another kind",
        SMALL.replace('region = "eu-west-1"', 'host = "smtp.example.com"'),
        "providers.ses.host: unknown key",
    ),
    (
        "bad time zone",
        SMALL.replace("Europe/Berlin", "Mars/Olympus"),
        "timezone: unknown time zone",
    ),
    ("broken TOML", SMALL + "\n[limits\n", "not valid TOML"),
    (
        "tracking host of another domain",
        SMALL.replace('provider = "ses"\n', 'provider = "ses"\ntracking_host = "t.x.net"\n', 1),
        "domains[0].tracking_host: 't.x.net' must be a host of acme-mail.com",
    ),
    (
        "seed IMAP security",
        SMALL.replace(SEEDS, SEED_WITH_IMAP.replace('"ssl"', '"tls"')),
        "warmup.seeds[1].imap_security: expected ssl, starttls or plain",
    ),
    (
        "integer beyond 64 bits",
        SMALL.replace("mailbox_daily_cap = 35", "mailbox_daily_cap = 100000000000000000000"),
        "limits.mailbox_daily_cap: 100000000000000000000 does not fit in 64 bits (TOML integers "
        "are 64-bit) (line 5)",
    ),
    (
        "cap beyond the database's integers",
        SMALL.replace("domain_daily_cap = 200", "domain_daily_cap = 4294967296"),
        "limits.domain_daily_cap: must be at most 2147483647, got 4294967296 (line 6)",
    ),
    (
        "boolean cap",
        SMALL.replace("domain_daily_cap = 200", "domain_daily_cap = true"),
        "limits.domain_daily_cap: expected a whole number, got True",
    ),
    (
        "boolean price",
        SMALL.replace("price_per_1000 = 0.10", "price_per_1000 = true"),
        "providers.ses.price_per_1000: expected a number, got True",
    ),
    (
        "mailbox IMAP security",
        SMALL.replace(
            "warmup = false",
            'warmup = false\nimap_host = "imap.acme-mail.com"\nimap_security = "tls"',
        ),
        "domains[0].mailboxes[1].imap_security: expected ssl, starttls or plain, got 'tls'",
    ),
    (
        "mailbox IMAP port as a boolean",
        SMALL.replace("warmup = false", "warmup = false\nimap_port = true"),
        "domains[0].mailboxes[1].imap_port: expected a port number, got True",
    ),
    (
        "seed IMAP without a password",
        SMALL.replace(SEEDS, SEED_WITH_IMAP.replace(', imap_password = "app-pass"', "")),
        "warmup.seeds[1].imap_password: a seed with IMAP settings needs imap_password",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "text", "message"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_exits_with_the_key_named_and_the_database_untouched(
    tmp_path: Path, case: str, text: str, message: str
) -> None:
    run_apply(EXAMPLE)
    before = snapshot()
    path = tmp_path / "pool.toml"
    path.write_text(text)
    with pytest.raises(CommandError) as excinfo:
        run_apply(path)
    assert message in str(excinfo.value)
    assert snapshot() == before


def test_it_names_the_line_of_a_bad_value() -> None:
    text = SMALL.replace('"ben@acme-mail.com"', '"ben@@acme-mail.com"')
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "ben@@" in row)
    with pytest.raises(ConfigError, match=rf"\(line {line}\)$"):
        parse(text)


@pytest.mark.django_db
def test_a_failure_halfway_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse(SMALL)
    import outreach.pool.config_apply as config_apply

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(config_apply, "_apply_mailbox", explode)
    with pytest.raises(RuntimeError):
        apply(spec)
    assert ProviderAccount.objects.count() == 0 and Domain.objects.count() == 0


@pytest.mark.django_db
def test_a_mailbox_takes_the_imap_options_the_docs_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outreach.lib import secrets

    monkeypatch.setenv("OUTREACH_SECRETS_KEY", secrets.generate_key())
    imap = (
        'warmup = false\nimap_host = "imap.acme-mail.com"\nimap_port = 143\n'
        'imap_security = "starttls"\nimap_username = "ben"\nimap_folders = ["INBOX", "Bounces"]\n'
        'imap_password = "app-pass"'
    )
    path = tmp_path / "pool.toml"
    path.write_text(SMALL.replace("warmup = false", imap))
    run_apply(path)
    ben = Mailbox.objects.get(address="ben@acme-mail.com")
    config = imap_config(ben)
    assert config is not None
    assert (config.host, config.port, config.security, config.username, config.folders) == (
        "imap.acme-mail.com",
        143,
        "starttls",
        "ben",
        ("INBOX", "Bounces"),
    )


def test_it_names_bounce_thresholds_that_cannot_be_weighed() -> None:
    text = SMALL + "\n[thresholds]\nbounce_baseline_rate = 0.04\n"
    line = len(text.splitlines())
    with pytest.raises(ConfigError, match=rf"^thresholds.bounce_baseline_rate: .*\(line {line}\)$"):
        parse(text)
