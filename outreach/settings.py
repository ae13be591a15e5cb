"""The one settings module of outreach, driven by the environment.

Defaults run on the embedded SQLite database with the sandbox provider; production sets
``OUTREACH_ENV=production``, which makes ``SECRET_KEY`` mandatory. Every variable is listed in
docs/configuration.md. Secrets accept a ``*_FILE`` variant.
"""

from __future__ import annotations

import secrets as _secrets
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from outreach.lib import env

# Generic Django classes (ModelAdmin[Campaign], ModelForm[...]) subscriptable at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent
OUTREACH_ENV = env.get_choice("OUTREACH_ENV", "development", ("development", "production", "test"))
PRODUCTION = OUTREACH_ENV == "production"

# Runtime files (SQLite database, generated secret key, sandbox outbox) live in var/, relative
# to the working directory unless OUTREACH_VAR_DIR says otherwise.
VAR_DIR = Path(env.get_str("OUTREACH_VAR_DIR", "var") or "var").resolve()


def _key(key: str | None, name: str, file_name: str) -> str:
    """The signing key ``name`` read from the environment (``key``); outside production, one
    generated once in var/ when unset."""
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} (or {name}_FILE) is required in production")
    key_file = VAR_DIR / file_name
    if key_file.exists():
        return key_file.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = _secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


if PRODUCTION and (_placeholders := env.placeholders()):
    raise ImproperlyConfigured(
        f"{', '.join(_placeholders)}: still the placeholder of deploy/outreach.env.example; "
        "set real values before starting in production"
    )
SECRET_KEY = _key(env.get_str("SECRET_KEY"), "SECRET_KEY", "secret_key")
# Previous keys, still accepted for sessions and signed values while they expire.
SECRET_KEY_FALLBACKS = env.get_list("SECRET_KEY_FALLBACKS", [])
# Unsubscribe links have their own key: the law wants them to work for 30 days after a send
# (we aim for as long as a link is kept), whatever happens to SECRET_KEY. Rotate by moving the
# old key to the fallbacks; links signed with SECRET_KEY (or its fallbacks) before this key
# existed are still accepted.
OUTREACH_UNSUBSCRIBE_KEY = _key(
    env.get_str("OUTREACH_UNSUBSCRIBE_KEY"), "OUTREACH_UNSUBSCRIBE_KEY", "unsubscribe_key"
)
OUTREACH_UNSUBSCRIBE_KEY_FALLBACKS = env.get_list("OUTREACH_UNSUBSCRIBE_KEY_FALLBACKS", [])
DEBUG = env.get_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production: error pages show secrets")
ALLOWED_HOSTS = env.get_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.get_list("CSRF_TRUSTED_ORIGINS", [])

OUTREACH_TIMEZONE = env.get_str("OUTREACH_TIMEZONE", "UTC") or "UTC"
try:
    ZoneInfo(OUTREACH_TIMEZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"OUTREACH_TIMEZONE: unknown time zone {OUTREACH_TIMEZONE!r}"
    ) from None

# Public base URL of this installation: unsubscribe links and webhooks are built on it.
OUTREACH_BASE_URL = (env.get_str("OUTREACH_BASE_URL", "http://127.0.0.1:8000") or "").rstrip("/")
if PRODUCTION and not OUTREACH_BASE_URL.startswith("https://"):
    raise ImproperlyConfigured("OUTREACH_BASE_URL must be an https:// URL in production")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "axes",  # login lockout after failed attempts
    "django_otp",  # TOTP two-factor for staff
    "django_otp.plugins.otp_totp",
    "outreach",  # project-wide commands: run, ensure_admin
    "outreach.pool",
    "outreach.campaigns",
    "outreach.scheduler",
    "outreach.sending",
    "outreach.events",
    "outreach.metrics",
    "outreach.alerts",
    "outreach.dashboard",
    "outreach.telegram",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Everything needs a login except views marked @login_not_required (healthz, webhooks,
    # unsubscribe links).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # A session that owes its second factor sees only the two-factor page.
    "outreach.accounts.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: answers a locked-out login with its lockout page.
    "axes.middleware.AxesMiddleware",
]

# Logins (docs/deploy.md): after OUTREACH_LOGIN_FAILURE_LIMIT wrong passwords for one user
# name from one address, that pair is locked for OUTREACH_LOGIN_COOLOFF_MINUTES (by user and
# address together, so nobody can lock the real admin out from elsewhere). Every failure is
# logged and shown on the audit page. `outreach axes_reset` unlocks everyone.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.get_int("OUTREACH_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env.get_int("OUTREACH_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_CLIENT_IP_CALLABLE = "outreach.accounts.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # no banner on every command
# TOTP two-factor: offered to staff on /accounts/2fa/; compulsory for staff when true.
OUTREACH_REQUIRE_2FA = env.get_bool("OUTREACH_REQUIRE_2FA", False)
OTP_TOTP_ISSUER = "outreach"

ROOT_URLCONF = "outreach.urls"
WSGI_APPLICATION = "outreach.wsgi.application"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# Django's SQLite backend with its per-statement costs paid once (outreach/lib/sqlite).
SQLITE_ENGINE = "outreach.lib.sqlite"


def _databases() -> dict[str, dict[str, object]]:
    url = env.get_str("DATABASE_URL", "sqlite:///var/outreach.sqlite3") or ""
    try:
        db = dict(dj_database_url.parse(url, conn_max_age=0))
    except Exception as exc:  # dj_database_url raises several kinds for bad URLs
        raise ImproperlyConfigured(f"DATABASE_URL: cannot parse {url!r}: {exc}") from exc
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db["ENGINE"] = SQLITE_ENGINE
        name = str(db["NAME"])
        if name != ":memory:":
            Path(name).resolve().parent.mkdir(parents=True, exist_ok=True)
        db["OPTIONS"] = {
            # IMMEDIATE: a write transaction takes the write lock at BEGIN, so two processes
            # never both read a counter and then fail to upgrade to a write ("database is
            # locked" mid-transaction); they queue on the busy timeout instead.
            "transaction_mode": "IMMEDIATE",
            "timeout": env.get_int("OUTREACH_SQLITE_TIMEOUT", 30),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    elif db["ENGINE"] == "django.db.backends.postgresql":
        db["CONN_HEALTH_CHECKS"] = True
        db["CONN_MAX_AGE"] = env.get_int("OUTREACH_DB_CONN_MAX_AGE", 60)
    else:
        raise ImproperlyConfigured(f"DATABASE_URL: unsupported database {db['ENGINE']}")
    test_name = env.get_str("OUTREACH_TEST_DATABASE_NAME")
    if test_name:
        db["TEST"] = {"NAME": test_name}
    elif db["ENGINE"] == SQLITE_ENGINE:
        # A file, not SQLite's shared in-memory database: the tests start other processes
        # (workers, commands) that must see the same data, as in production.
        db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    return {"default": db}


DATABASES = _databases()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Applied wherever a password is chosen: the admin, `changepassword`, `createsuperuser` and
# `outreach ensure_admin` (OUTREACH_ADMIN_PASSWORD).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise expects it even when empty
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders so `outreach run` works without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PRODUCTION else None
# Production is served over https behind a proxy: plain http is redirected, except the probes
# a supervisor or a scraper on the machine itself sends to the local port.
SECURE_SSL_REDIRECT = PRODUCTION
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# HSTS: browsers refuse plain http to this host (and its subdomains) for a year.
SECURE_HSTS_SECONDS = env.get_int("OUTREACH_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True

# Provider webhooks (events collector). Comma-separated "user:password" pairs for basic auth;
# several pairs allow rotation without downtime.
ANYMAIL: dict[str, object] = {
    "WEBHOOK_SECRET": env.get_list("OUTREACH_WEBHOOK_SECRET", []) or None,
}
# Provider webhook signatures: Mailgun's HTTP webhook signing key, SendGrid's signed event
# webhook public key (base64, as shown in its settings). Without its key Mailgun's webhook
# answers 503 (and keeps the request); SendGrid's then relies on the shared secret alone.
if _mailgun_key := env.get_str("OUTREACH_MAILGUN_WEBHOOK_SIGNING_KEY"):
    ANYMAIL["MAILGUN_WEBHOOK_SIGNING_KEY"] = _mailgun_key
if _sendgrid_key := env.get_str("OUTREACH_SENDGRID_WEBHOOK_VERIFICATION_KEY"):
    ANYMAIL["SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"] = _sendgrid_key
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Encryption key for secrets stored in the database (see outreach.lib.secrets).
OUTREACH_SECRETS_KEY_SET = bool(env.get_str("OUTREACH_SECRETS_KEY"))

# Alert channels: comma-separated Apprise URLs (tgram://BOT_TOKEN/CHAT_ID, ...). Empty: log only.
OUTREACH_ALERT_URLS = env.get_list("OUTREACH_ALERT_URLS", [])

# Where the sandbox provider writes accepted messages.
OUTREACH_OUTBOX_DIR = Path(env.get_str("OUTREACH_OUTBOX_DIR", str(VAR_DIR / "outbox")) or "")

LOG_LEVEL = env.get_choice("OUTREACH_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"waitress.queue": {"level": "ERROR"}},
}

# Engine loops started by `outreach run` beside the web server: dotted paths to
# `make_loop(stop: threading.Event) -> outreach.lib.loop.Loop`.
OUTREACH_LOOPS: list[str] = []
# A running loop silent for longer than this is reported by /healthz (and alerted on). At
# least 60: a loop with a backlog beats between units every 30 s (Loop.tick_seconds), and the
# sending worker's unit lasts that long (Worker.PIPELINE_SECONDS) and its last batch after.
OUTREACH_HEARTBEAT_STALE_SECONDS = env.get_int("OUTREACH_HEARTBEAT_STALE_SECONDS", 300, minimum=60)
# After SIGTERM/SIGINT a long-running command finishes its unit of work; one still busy this
# long after the signal exits anyway (outreach.lib.shutdown). Keep systemd's TimeoutStopSec above.
OUTREACH_SHUTDOWN_SECONDS = env.get_int("OUTREACH_SHUTDOWN_SECONDS", 30, minimum=1)

# DNS checks of the sending domains (`outreach dns check`, and periodically in `outreach run`):
# resolvers as "ip[:port],..." (empty: the system's), the seconds one lookup may take, whether
# a critical failure (no SPF, no DKIM, no DMARC...) stops sending from the domain, the DNS
# blocklists for domains and for SMTP sending IPs, and how often each domain is re-checked
# (0: never, only by hand).
OUTREACH_DNS_NAMESERVERS = env.get_list("OUTREACH_DNS_NAMESERVERS", [])
OUTREACH_DNS_TIMEOUT = env.get_int("OUTREACH_DNS_TIMEOUT", 5, minimum=1)
OUTREACH_DNS_CRITICAL_BLOCKS_SENDING = env.get_bool("OUTREACH_DNS_CRITICAL_BLOCKS_SENDING", True)
OUTREACH_DNS_DOMAIN_BLOCKLISTS = env.get_list(
    "OUTREACH_DNS_DOMAIN_BLOCKLISTS", ["dbl.spamhaus.org"]
)
OUTREACH_DNS_IP_BLOCKLISTS = env.get_list("OUTREACH_DNS_IP_BLOCKLISTS", ["zen.spamhaus.org"])
OUTREACH_DNS_CHECK_INTERVAL_MINUTES = env.get_int("OUTREACH_DNS_CHECK_INTERVAL_MINUTES", 360)
# Names whose MX must exist: asked first, so that a resolver answering NXDOMAIN for everything
# gives "could not check", never "missing" (which would block sending).
OUTREACH_DNS_CANARIES = env.get_list("OUTREACH_DNS_CANARIES", ["gmail.com", "outlook.com"])
OUTREACH_LOOPS.append("outreach.pool.dns.loop.make_loop")

# Health rules and alerting (docs/alerts.md): the quiet period of one alert key, delivery
# attempts before an alert is marked failed, how often the periodic health pass runs, the
# pool-local hour of the daily digest (-1: none), how long webhooks may stay silent while
# mail is being sent, how often SES accounts are checked, the monthly budget the cost
# projection is compared with (empty: none), and the bearer token of /metrics (empty: 403).
OUTREACH_ALERT_QUIET_MINUTES = env.get_int("OUTREACH_ALERT_QUIET_MINUTES", 60)
OUTREACH_ALERT_MAX_ATTEMPTS = env.get_int("OUTREACH_ALERT_MAX_ATTEMPTS", 8, minimum=1)
OUTREACH_HEALTH_INTERVAL_SECONDS = env.get_int("OUTREACH_HEALTH_INTERVAL_SECONDS", 60, minimum=1)
OUTREACH_DIGEST_HOUR = env.get_int("OUTREACH_DIGEST_HOUR", 8, minimum=-1)
OUTREACH_WEBHOOK_SILENCE_MINUTES = env.get_int("OUTREACH_WEBHOOK_SILENCE_MINUTES", 60, minimum=1)
# Refused webhook requests (dead letters) are kept this many days for inspection and replay.
OUTREACH_DEAD_LETTER_DAYS = env.get_int("OUTREACH_DEAD_LETTER_DAYS", 30, minimum=1)
# At most this many dead letters per webhook endpoint; older ones go first. A letter holds up
# to 1 MiB, so the default bounds them at about 1 GiB per endpoint in the worst case.
OUTREACH_DEAD_LETTER_CAP = env.get_int("OUTREACH_DEAD_LETTER_CAP", 1000, minimum=1)
OUTREACH_SES_WATCH_SECONDS = env.get_int("OUTREACH_SES_WATCH_SECONDS", 300, minimum=10)
# Retention of per-message bulk (docs/configuration.md "Retention", outreach.retention), in
# days; 0 keeps it for ever. Raw: the providers' event payloads, their answers to send
# attempts and the outgoing webhooks' delivered payloads. Bodies: the text and HTML of the
# inbox's mail and the operator's answers. Rows, dedup keys, thread headers, suppressions and
# rollups are never removed.
OUTREACH_RETAIN_RAW_DAYS = env.get_int("OUTREACH_RETAIN_RAW_DAYS", 30)
OUTREACH_RETAIN_BODY_DAYS = env.get_int("OUTREACH_RETAIN_BODY_DAYS", 365)


def _budget() -> Decimal | None:
    raw = (env.get_str("OUTREACH_MONTHLY_BUDGET", "20") or "").strip()
    try:
        return Decimal(raw) if raw else None
    except InvalidOperation:
        raise ImproperlyConfigured(f"OUTREACH_MONTHLY_BUDGET: not a number: {raw!r}") from None


OUTREACH_MONTHLY_BUDGET = _budget()
OUTREACH_METRICS_TOKEN = env.get_str("OUTREACH_METRICS_TOKEN", "") or ""
OUTREACH_LOOPS.append("outreach.alerts.loop.make_loop")

# The Telegram bot (docs/telegram.md): its token from @BotFather, the chat ids it answers (any
# other chat is ignored and counted), the Bot API's address (a fake one in tests), and how long
# one getUpdates waits for a message (below OUTREACH_SHUTDOWN_SECONDS, so a stop is not cut).
# With a token, `outreach run` runs the bot beside the other loops.
OUTREACH_TELEGRAM_BOT_TOKEN = env.get_str("OUTREACH_TELEGRAM_BOT_TOKEN", "") or ""
OUTREACH_TELEGRAM_API_URL = (
    env.get_str("OUTREACH_TELEGRAM_API_URL", "") or "https://api.telegram.org"
)
OUTREACH_TELEGRAM_POLL_SECONDS = env.get_int("OUTREACH_TELEGRAM_POLL_SECONDS", 20)


def _chat_ids() -> list[int]:
    raw = env.get_list("OUTREACH_TELEGRAM_CHAT_IDS", [])
    try:
        return [int(item) for item in raw]
    except ValueError:
        raise ImproperlyConfigured(
            f"OUTREACH_TELEGRAM_CHAT_IDS: expected comma-separated chat ids, got {raw!r}"
        ) from None


OUTREACH_TELEGRAM_CHAT_IDS = _chat_ids()
if OUTREACH_TELEGRAM_BOT_TOKEN:
    OUTREACH_LOOPS.append("outreach.telegram.bot.make_loop")

# Sending engine (docs/providers.md): parallel provider calls per worker process.
OUTREACH_WORKER_CONCURRENCY = env.get_int("OUTREACH_WORKER_CONCURRENCY", 4, minimum=1)
OUTREACH_LOOPS.append("outreach.sending.engine.make_loop")
# Reconciliation of messages in doubt (`unknown`, docs/providers.md): how often one is looked
# up again, and after how many minutes since its call began one not found goes back to
# routing. The risk of that resend: a message the provider did take but filed nowhere a
# lookup can see (or that its lookup missed) reaches its recipient twice. 0: never resend;
# the operator decides.
OUTREACH_RECONCILE_EVERY_MINUTES = env.get_int("OUTREACH_RECONCILE_EVERY_MINUTES", 5, minimum=1)
OUTREACH_UNKNOWN_RESEND_AFTER_MINUTES = env.get_int(
    "OUTREACH_UNKNOWN_RESEND_AFTER_MINUTES", 30, minimum=0
)

# The IMAP reader of the events collector (replies, bounces, unsubscribes, seed placement):
# `outreach inbox`.
OUTREACH_LOOPS.append("outreach.events.loop.make_loop")
OUTREACH_LOOPS.append("outreach.events.outgoing.make_loop")  # outgoing webhooks

# Lead import (docs/campaigns.md): reject addresses whose domain has no MX/A record (DNS
# lookups through OUTREACH_DNS_NAMESERVERS, cached per domain); `--check-mx` per import.
OUTREACH_LEADS_CHECK_MX = env.get_bool("OUTREACH_LEADS_CHECK_MX", False)

# Control plane (docs/scheduling.md): the scheduler loop, and a JSON file of warm-up messages
# ([{"subject": ..., "text": ...}, ...]) replacing the built-in plain set (empty: built-in).
OUTREACH_LOOPS.append("outreach.scheduler.engine.make_loop")
OUTREACH_WARMUP_CONTENT_FILE = env.get_str("OUTREACH_WARMUP_CONTENT_FILE", "") or ""
