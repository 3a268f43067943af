"""
DeliveryHub settings: one module, fed by the environment, with dev defaults.

Every setting that an operator may change is read here through a typed helper
(`env_str`, `env_bool`, `env_int`, `env_float`, `env_list`, `env_secret`) and documented in
README.md; a value of the wrong type fails fast with ImproperlyConfigured. A setting NAME is read
from the variable DELIVERYHUB_NAME, a leading DELIVERY_ dropped (DELIVERY_BATCH_SIZE ↔
DELIVERYHUB_BATCH_SIZE), except DEBUG, DATABASE_URL and REDIS_URL (their usual names) and
NODE_NAME (DELIVERYHUB_NODE, as the design names it). Earlier names still work with a
DeprecatedSettingWarning (`old=`). Production mode (DEBUG off) refuses to start without real secrets.
"""

import math
import os
import secrets
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .api.schema_tags import TAG_DESCRIPTIONS

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DELIVERYHUB_VAR_DIR", BASE_DIR / "var"))


class DeprecatedSettingWarning(FutureWarning):
    """An environment variable was read under an old name that still works for now."""


def _raw(name, old=()):
    """The value of NAME, else of the first old name set (with a deprecation warning), else None."""
    value = os.environ.get(name)
    if value is not None and value != "":
        return value
    for old_name in old:
        value = os.environ.get(old_name)
        if value is not None and value != "":
            warnings.warn(f"{old_name} is deprecated: rename it {name}.", DeprecatedSettingWarning, stacklevel=3)
            return value
    return None


def env_str(name, default=None, *, old=()):
    value = _raw(name, old)
    return default if value is None else value


def env_bool(name, default=False, *, old=()):
    value = _raw(name, old)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name, default, *, old=()):
    value = _raw(name, old)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_float(name, default, *, old=()):
    value = _raw(name, old)
    if value is None:
        return default
    try:
        result = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {value!r}")
    return result


def env_list(name, default=(), *, old=()):
    value = _raw(name, old)
    if value is None or value.strip() == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_secret(name, *, dev_file, production):
    """Read a secret from NAME, or from the file named by NAME_FILE.

    In production a missing secret fails fast. In development a random value is
    generated once and kept under var/ so that sessions and encrypted data
    survive restarts.
    """
    value = os.environ.get(name)
    file_name = os.environ.get(f"{name}_FILE")
    if not value and file_name:
        try:
            value = Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name} cannot be read: {exc}") from None
    if value:
        return value
    if production:
        raise ImproperlyConfigured(
            f"{name} is not set. Production mode (DEBUG=false) needs it: set {name} or {name}_FILE."
        )
    path = VAR_DIR / dev_file
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# DEBUG=false is production mode (real secrets, secure cookies, no demo). Django's own DEBUG (its technical error
# pages with tracebacks and URL lists, and the in-memory SQL log) is an explicit opt-in of development: by default
# even `make run` answers with the product's 404/403/500 pages and logs the details.
PRODUCTION = not env_bool("DEBUG", True)
DEBUG_PAGES = env_bool("DELIVERYHUB_DEBUG_PAGES", False)  # development only: Django's technical error pages
DEBUG = DEBUG_PAGES and not PRODUCTION

SECRET_KEY = env_secret("DELIVERYHUB_SECRET_KEY", dev_file="secret_key", production=PRODUCTION)
# Data key(s) for encryption at rest (Fernet); comma-separated, newest first, for rotation.
DATA_KEY = env_secret("DELIVERYHUB_DATA_KEY", dev_file="data_key", production=PRODUCTION)
# Key of the pseudonyms (HMAC) that replace erased addresses and personal fields in the audit log. Never rotate it:
# an erased address stays suppressed only while its pseudonym is the same.
PSEUDONYM_KEY = env_secret("DELIVERYHUB_PSEUDONYM_KEY", dev_file="pseudonym_key", production=PRODUCTION)
# Pepper for API key and credential digests; defaults to one derived from SECRET_KEY.
API_KEY_PEPPER = env_str("DELIVERYHUB_API_KEY_PEPPER", SECRET_KEY)

ALLOWED_HOSTS = env_list("DELIVERYHUB_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DELIVERYHUB_CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("DELIVERYHUB_SITE_URL", "http://127.0.0.1:8000")
WEB_HOST = env_str("DELIVERYHUB_WEB_HOST", "127.0.0.1")  # where `make run` serves the panel
WEB_PORT = env_int("DELIVERYHUB_WEB_PORT", 8000)  # its port (a platform port: never a tenant's route target)
# Routes and webhooks may target loopback/private/link-local addresses (never this host's platform ports).
# Off: tenants' targets must be public addresses (deliveryhub/netguard.py). Tests and the demo turn it on.
OUTBOUND_ALLOW_PRIVATE_TARGETS = env_bool("DELIVERYHUB_OUTBOUND_ALLOW_PRIVATE_TARGETS", False)
# Where recipients reach the public endpoints (one-click unsubscribe /u/…, open and click tracking /t/…): an https
# URL in production (RFC 8058 and the bulk-sender rules want https), the panel's URL by default.
PUBLIC_URL = env_str("DELIVERYHUB_PUBLIC_URL", SITE_URL).rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "rest_framework",
    "django_filters",
    "django_tables2",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "deliveryhub",
    "domains",
    "ippools",
    "queues",
    "reports",
]

MIDDLEWARE = [
    "deliveryhub.middleware.RequestIDMiddleware",
    "deliveryhub.middleware.DatabaseUnavailableMiddleware",  # database unreachable: 503 + Retry-After, never 500
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "deliveryhub.middleware.SessionTimeoutMiddleware",  # signed out after SESSION_IDLE_SECONDS / SESSION_COOKIE_AGE
    "deliveryhub.middleware.TenantMiddleware",
    "deliveryhub.otp.SecondFactorMiddleware",  # second factor pending or required by the role: only the 2FA pages
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "deliveryhub.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "deliveryhub.context_processors.tenancy",
            ],
        },
    },
]

WSGI_APPLICATION = "deliveryhub.wsgi.application"

# Database: DATABASE_URL (postgres://… in production and CI), SQLite under var/ by default.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'deliveryhub.sqlite3'}")
# In production, connections are kept for DATABASE_CONN_MAX_AGE seconds (checked before reuse): opening one per
# request cost a PostgreSQL backend start each time, longer than a single-message POST's own work. Not in
# development: runserver handles each request in a new thread, which would leave its connection behind.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60 if PRODUCTION else 0), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock at BEGIN: no read-then-write races between processes. WAL: readers
    # never wait for the writer, and a commit is one append (fsync'd: synchronous stays FULL, no commit is lost).
    # secure_delete: deleted rows are overwritten in the file (an erased address leaves no trace in var/).
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30,
                                       "init_command": "PRAGMA journal_mode=WAL; PRAGMA secure_delete=ON"}  # fmt: skip
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES["default"].setdefault("TEST", {})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: RQ queues, throttle counters, caches. Unset: the embedded Redis `make run` starts on a socket under var/.
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis.sock"
REDIS_URL = env_str("REDIS_URL", f"unix://{EMBEDDED_REDIS_SOCKET}")


def redis_connection(url):
    """django-rq's connection settings for REDIS_URL: a plain URL, or Redis Sentinel in the form
    `redis+sentinel://[:password@]host:port[,host:port…]/<master name>[/<db>]` (the master is found through the
    sentinels and found again after a failover)."""
    if not url.startswith("redis+sentinel://"):
        return {"URL": url}
    from urllib.parse import unquote, urlsplit

    rest = url[len("redis+sentinel://") :]
    credentials, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    parts = [part for part in path.split("/") if part]
    if not hosts or not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ImproperlyConfigured(
            "REDIS_URL with Sentinel is redis+sentinel://[:password@]host:port[,host:port…]/<master name>[/<db>]"
        )
    sentinels = []
    for host in hosts.split(","):
        parsed = urlsplit(f"//{host}")
        if not parsed.hostname:
            raise ImproperlyConfigured(f"REDIS_URL: {host!r} is not a sentinel host[:port].")
        sentinels.append((parsed.hostname, parsed.port or 26379))
    password = unquote(credentials.partition(":")[2]) if credentials else None
    return {"SENTINELS": sentinels, "MASTER_NAME": parts[0], "DB": int(parts[1]) if len(parts) == 2 else 0,
            "PASSWORD": password or None, "SOCKET_TIMEOUT": 5,
            "SENTINEL_KWARGS": {"password": password} if password else {}}  # fmt: skip


REDIS_CONNECTION = redis_connection(REDIS_URL)
RQ_QUEUES = {
    name: {**REDIS_CONNECTION, "DEFAULT_TIMEOUT": timeout}
    for name, timeout in (("delivery", 300), ("default", 600), ("low", 3600))
}
RQ_IS_ASYNC = env_bool("DELIVERYHUB_RQ_IS_ASYNC", True, old=("DELIVERYHUB_RQ_ASYNC",))
REDIS_CACHE = env_bool("DELIVERYHUB_REDIS_CACHE", False)
if REDIS_CACHE and "SENTINELS" in REDIS_CONNECTION:
    raise ImproperlyConfigured("DELIVERYHUB_REDIS_CACHE needs a plain REDIS_URL: Django's cache has no Sentinel client")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_CACHE
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
DJANGO_TABLES2_TEMPLATE = "django_tables2/bootstrap5-responsive.html"  # tables scroll inside their card
DJANGO_TABLES2_TABLE_ATTRS = {"class": "table table-sm table-hover align-middle mb-0"}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Sessions and cookies.
SESSION_COOKIE_SECURE = env_bool("DELIVERYHUB_SESSION_COOKIE_SECURE", PRODUCTION, old=("DELIVERYHUB_SECURE_COOKIES",))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# A session ends 12 hours after sign-in whatever happens (absolute), and after 30 minutes without activity (idle;
# pages polling in the background are not activity). deliveryhub.middleware.SessionTimeoutMiddleware.
SESSION_COOKIE_AGE = env_int("DELIVERYHUB_SESSION_COOKIE_AGE", 12 * 3600, old=("DELIVERYHUB_SESSION_AGE",))
SESSION_IDLE_SECONDS = env_int("DELIVERYHUB_SESSION_IDLE_SECONDS", 30 * 60)
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env_bool("DELIVERYHUB_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Sign-in, second-factor and SMTP AUTH throttling (deliveryhub/throttle.py): failures in the window make the next
# attempt wait, DELAY seconds doubling per further failure up to MAX_DELAY; a client that has not failed never waits.
LOGIN_THROTTLE_WINDOW = env_int("DELIVERYHUB_LOGIN_THROTTLE_WINDOW", 900)  # seconds failures are remembered
LOGIN_THROTTLE_SLOW_AFTER = env_int("DELIVERYHUB_LOGIN_THROTTLE_SLOW_AFTER", 3)  # per (account, address)
LOGIN_THROTTLE_ADDRESS_SLOW_AFTER = env_int("DELIVERYHUB_LOGIN_THROTTLE_ADDRESS_SLOW_AFTER", 10)  # per address
LOGIN_THROTTLE_ACCOUNT_SLOW_AFTER = env_int("DELIVERYHUB_LOGIN_THROTTLE_ACCOUNT_SLOW_AFTER", 10)  # per account (*)
LOGIN_THROTTLE_DELAY = env_float("DELIVERYHUB_LOGIN_THROTTLE_DELAY", 1.0)  # first wait, seconds
LOGIN_THROTTLE_MAX_DELAY = env_float("DELIVERYHUB_LOGIN_THROTTLE_MAX_DELAY", 900)  # longest wait, seconds
# (*) holds back only addresses that have failed for that account themselves.

OTP_TOTP_ISSUER = env_str("DELIVERYHUB_OTP_TOTP_ISSUER", "DeliveryHub", old=("DELIVERYHUB_OTP_ISSUER",))
# A fresh OTP check (sudo mode) is valid this long for sensitive actions (keys, role changes, 2FA changes).
OTP_SUDO_SECONDS = env_int("DELIVERYHUB_OTP_SUDO_SECONDS", 300)
# After a wrong code, the next check of that device waits this many seconds, doubling per wrong code (django-otp).
OTP_TOTP_THROTTLE_FACTOR = env_float("DELIVERYHUB_OTP_TOTP_THROTTLE_FACTOR", 1.0)
OTP_STATIC_THROTTLE_FACTOR = env_float("DELIVERYHUB_OTP_STATIC_THROTTLE_FACTOR", 1.0)  # the same for recovery codes

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = VAR_DIR / "files"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "deliveryhub.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["deliveryhub.api.permissions.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "deliveryhub.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["deliveryhub.api.filters.RestrictedFilterBackend"],
    "DEFAULT_PARSER_CLASSES": [
        "deliveryhub.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "deliveryhub.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "deliveryhub.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DeliveryHub API",
    "DESCRIPTION": (
        "Self-hosted email delivery: send messages, manage sending domains, IP pools, routes and throttles, read the "
        "audit log.\n\nAuthenticate with an API key: `Authorization: Bearer dh_live_…` (a tenant key acts with its "
        "role or a narrower scope; `dh_op_…` platform keys manage platform objects). Another tenant's object answers "
        "404.\n\nEvery error has one shape: `{\"error\": {\"code\": \"invalid\", \"message\": \"Invalid input.\", "
        "\"fields\": {\"to\": [\"…\"]}}}`: `code` is stable (`invalid`, `not_authenticated`, `permission_denied`, "
        "`not_found`, `conflict`, `otp_required`, `throttled`, `server_error`), `fields` names each bad field (400). "
        "Lists are paginated: `?page=N&page_size=M` (at most 1000), answering `count`, `next`, `previous`, `results`."
    ),
    "TAGS": TAG_DESCRIPTIONS,
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from vendored files (no CDN): the panel works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Background jobs and the scheduler.
# how often the scheduler looks for due work
SCHEDULER_TICK_SECONDS = env_int("DELIVERYHUB_SCHEDULER_TICK_SECONDS", 1, old=("DELIVERYHUB_SCHEDULER_TICK",))
# the active scheduler's lease: a standby takes over this long (plus a tick) after the active one stopped renewing
SCHEDULER_LEASE_SECONDS = env_int("DELIVERYHUB_SCHEDULER_LEASE_SECONDS", 15)
# rows fetched per query when streaming exports
EXPORT_ROWS_PER_CHUNK = env_int("DELIVERYHUB_EXPORT_ROWS_PER_CHUNK", 2000, old=("DELIVERYHUB_EXPORT_CHUNK",))
EXPORT_PDF_MAX_ROWS = env_int("DELIVERYHUB_EXPORT_PDF_MAX_ROWS", 20000)  # PDF exports stop here (CSV has no cap)

# DNS: resolvers as host[:port] list; empty = the system's.
DNS_RESOLVERS = env_list("DELIVERYHUB_DNS_RESOLVERS")
DNS_TIMEOUT = env_float("DELIVERYHUB_DNS_TIMEOUT", 5)  # seconds per query, total
# Delivery node this process runs as.
NODE_NAME = env_str("DELIVERYHUB_NODE", "local")
SMTP_PORT = env_int("DELIVERYHUB_SMTP_PORT", 25)  # outbound port for MX delivery
# Delivery engine (queues/delivery): SMTP client, connection pool, DKIM, MX cache, retries.
SMTP_CONNECT_TIMEOUT = env_float("DELIVERYHUB_SMTP_CONNECT_TIMEOUT", 30)  # TCP connect + greeting
SMTP_COMMAND_TIMEOUT = env_float("DELIVERYHUB_SMTP_COMMAND_TIMEOUT", 120)  # each command's reply
SMTP_DATA_TIMEOUT = env_float("DELIVERYHUB_SMTP_DATA_TIMEOUT", 300)  # sending data + end-of-data reply
SMTP_MAX_MESSAGES_PER_CONNECTION = env_int("DELIVERYHUB_SMTP_MAX_MESSAGES_PER_CONNECTION", 100)  # then QUIT, reconnect
# per (source IP, host)
SMTP_MAX_CONNECTIONS_PER_DESTINATION = env_int(
    "DELIVERYHUB_SMTP_MAX_CONNECTIONS_PER_DESTINATION", 100, old=("DELIVERYHUB_SMTP_MAX_CONNECTIONS",)
)
SMTP_IDLE_TIMEOUT = env_float("DELIVERYHUB_SMTP_IDLE_TIMEOUT", 30)  # pooled idle connection closed after
SMTP_TLS_CA_FILE = env_str("DELIVERYHUB_SMTP_TLS_CA_FILE", "")  # extra CAs (PEM) beside the system store
# circuit breaker per destination host (queues/delivery/health.py): down this long after a connect timeout, a tarpit,
# a refusal or a 421 greeting, doubling per failure in a row up to the maximum
SMTP_BREAKER_SECONDS = env_float("DELIVERYHUB_SMTP_BREAKER_SECONDS", 30)
SMTP_BREAKER_MAX_SECONDS = env_float("DELIVERYHUB_SMTP_BREAKER_MAX_SECONDS", 1800)
MX_CACHE_MAX_ENTRIES = env_int("DELIVERYHUB_MX_CACHE_MAX_ENTRIES", 10000)  # destination domains kept in-process
MX_NEGATIVE_CACHE_SECONDS = env_int("DELIVERYHUB_MX_NEGATIVE_CACHE_SECONDS", 60)  # NXDOMAIN/no-address answers kept
DELIVERY_RETRY_BASE_SECONDS = env_int("DELIVERYHUB_RETRY_BASE_SECONDS", 300)  # first deferral's delay, doubling
DELIVERY_RETRY_MAX_SECONDS = env_int("DELIVERYHUB_RETRY_MAX_SECONDS", 7200)  # longest delay between tries
DELIVERY_RETRY_HORIZON_SECONDS = env_int("DELIVERYHUB_RETRY_HORIZON_SECONDS", 4 * 86400)  # then the message expires
DELIVERY_RETRY_JITTER = env_float("DELIVERYHUB_RETRY_JITTER", 0.1)  # ± fraction added to each delay
DELIVERY_RETRY_HINT_MAX_SECONDS = env_int("DELIVERYHUB_RETRY_HINT_MAX_SECONDS", 86400)  # cap on "try again in N" hints

# IP pools: nodes, warm-up, blocklists, reputation (ippools app).
NODE_HEARTBEAT_TIMEOUT = env_int("DELIVERYHUB_NODE_HEARTBEAT_TIMEOUT", 120)  # seconds without a heartbeat = node down
WARMUP_TIME_ZONE = env_str("DELIVERYHUB_WARMUP_TIME_ZONE", "UTC")  # warm-up day boundary of IPs in shared pools
WARMUP_STEP_SECONDS = env_int("DELIVERYHUB_WARMUP_STEP_SECONDS", 900)  # how often warm-ups look for a new day
WARMUP_MAX_BOUNCE_RATE = env_float("DELIVERYHUB_WARMUP_MAX_BOUNCE_RATE", 0.05)  # default plan threshold
WARMUP_MAX_DEFERRAL_RATE = env_float("DELIVERYHUB_WARMUP_MAX_DEFERRAL_RATE", 0.20)  # default threshold
WARMUP_MAX_COMPLAINT_RATE = env_float("DELIVERYHUB_WARMUP_MAX_COMPLAINT_RATE", 0.001)  # default threshold
IP_USAGE_FLUSH_SECONDS = env_int("DELIVERYHUB_IP_USAGE_FLUSH_SECONDS", 60)  # Redis warm-up counters → database
BLOCKLIST_SWEEP_SECONDS = env_int("DELIVERYHUB_BLOCKLIST_SWEEP_SECONDS", 1800)  # periodic DNSBL sweep
BLOCKLIST_ZONES = env_list(  # default IP blocklists (admins add more as BlocklistZone rows)
    "DELIVERYHUB_BLOCKLIST_ZONES", ["zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net"]
)
BLOCKLIST_DOMAIN_ZONES = env_list("DELIVERYHUB_BLOCKLIST_DOMAIN_ZONES", ["dbl.spamhaus.org"])  # sending-domain lists
SPAMHAUS_DQS_KEY = env_str("DELIVERYHUB_SPAMHAUS_DQS_KEY", "")  # Spamhaus Data Query Service key: queries go to DQS
# shortest time a DNSBL answer is kept
BLOCKLIST_MIN_CACHE_SECONDS = env_int(
    "DELIVERYHUB_BLOCKLIST_MIN_CACHE_SECONDS", 300, old=("DELIVERYHUB_BLOCKLIST_MIN_CACHE",)
)
# longest time a DNSBL answer is kept
BLOCKLIST_MAX_CACHE_SECONDS = env_int(
    "DELIVERYHUB_BLOCKLIST_MAX_CACHE_SECONDS", 3600, old=("DELIVERYHUB_BLOCKLIST_MAX_CACHE",)
)
# retry an unknown (timeout/SERVFAIL) answer after this many seconds
BLOCKLIST_RETRY_SECONDS = env_int("DELIVERYHUB_BLOCKLIST_RETRY_SECONDS", 120, old=("DELIVERYHUB_BLOCKLIST_RETRY",))
BLOCKLIST_QUERY_ATTEMPTS = env_int("DELIVERYHUB_BLOCKLIST_QUERY_ATTEMPTS", 2)  # tries per query before `unknown`
REPUTATION_WINDOW_DAYS = env_int("DELIVERYHUB_REPUTATION_WINDOW_DAYS", 7)  # recent outcomes that make a score
REPUTATION_UPDATE_SECONDS = env_int("DELIVERYHUB_REPUTATION_UPDATE_SECONDS", 3600)  # periodic reputation recompute
# Adaptive throttling per (source IP, provider): a rate-limit reply halves the pair's connections and suspends it.
THROTTLE_SUSPEND_SECONDS = env_int("DELIVERYHUB_THROTTLE_SUSPEND_SECONDS", 60)  # first suspension; doubles per repeat
THROTTLE_SUSPEND_MAX_SECONDS = env_int("DELIVERYHUB_THROTTLE_SUSPEND_MAX_SECONDS", 1800)  # longest suspension
THROTTLE_RESTORE_AFTER = env_int("DELIVERYHUB_THROTTLE_RESTORE_AFTER", 100)  # deliveries in a row that undo one halving
THROTTLE_MAX_LEVEL = env_int("DELIVERYHUB_THROTTLE_MAX_LEVEL", 6)  # most halvings (connections, rates) of one pair

# Retention purge: rows deleted per transaction (short transactions keep locks short while delivery runs).
RETENTION_PURGE_CHUNK = env_int("DELIVERYHUB_RETENTION_PURGE_CHUNK", 2000)
# Message bodies (and captured test mail) stored encrypted with the data key (AES-256-GCM); off: stored in clear.
ENCRYPT_MESSAGE_BODIES = env_bool("DELIVERYHUB_ENCRYPT_MESSAGE_BODIES", False)
# Delivery: intake, queue, workers (queues app). Engine knobs (SMTP, DKIM, backoff) sit beside SMTP_PORT.
MESSAGE_MAX_BYTES = env_int("DELIVERYHUB_MESSAGE_MAX_BYTES", 25 * 1024 * 1024)  # largest accepted message (octets)
MESSAGE_MAX_RECIPIENTS = env_int("DELIVERYHUB_MESSAGE_MAX_RECIPIENTS", 1000)  # envelope recipients per message
# Largest request body (API and forms): a largest message sent base64 (4/3 of it) and 1 MiB of JSON around it;
# a larger body is a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = -(-MESSAGE_MAX_BYTES * 4 // 3) + 1024 * 1024
# messages one batch job claims
DELIVERY_BATCH_SIZE = env_int("DELIVERYHUB_BATCH_SIZE", 200, old=("DELIVERYHUB_DELIVERY_BATCH_SIZE",))
# a claimed batch's lease (renewed while the batch works: a dead worker's rows are free after it)
DELIVERY_LEASE_SECONDS = env_int("DELIVERYHUB_LEASE_SECONDS", 600, old=("DELIVERYHUB_DELIVERY_LEASE_SECONDS",))
# enqueued, unclaimed: rescheduled after
DELIVERY_SCHEDULE_LEASE_SECONDS = env_int(
    "DELIVERYHUB_SCHEDULE_LEASE_SECONDS", 120, old=("DELIVERYHUB_SCHEDULE_LEASE",)
)
DELIVERY_MAX_LEASE_RECLAIMS = env_int("DELIVERYHUB_MAX_LEASE_RECLAIMS", 3)  # workers died on a message: then held
DELIVERY_MAX_SCHEDULE_SECONDS = env_int("DELIVERYHUB_MAX_SCHEDULE_SECONDS", 30 * 86400)  # furthest `send_at` accepted
# seconds between scheduler runs
DELIVERY_SCHEDULER_INTERVAL = env_int(
    "DELIVERYHUB_SCHEDULER_INTERVAL", 2, old=("DELIVERYHUB_DELIVERY_SCHEDULER_INTERVAL",)
)
# ready messages one scheduler run looks at
DELIVERY_SCAN_LIMIT = env_int("DELIVERYHUB_SCAN_LIMIT", 20000, old=("DELIVERYHUB_DELIVERY_SCAN_LIMIT",))
# a batch starts no new SMTP transaction after this many seconds: the rest goes back unchanged
DELIVERY_BATCH_SECONDS = env_int("DELIVERYHUB_BATCH_SECONDS", 120)
# the longest one SMTP transaction can last by its stage timeouts (connect, greeting, EHLO, STARTTLS each within
# SMTP_CONNECT_TIMEOUT; MAIL, RCPT, DATA each within SMTP_COMMAND_TIMEOUT; the data and its reply)
SMTP_TRANSACTION_MAX_SECONDS = 4 * SMTP_CONNECT_TIMEOUT + 3 * SMTP_COMMAND_TIMEOUT + SMTP_DATA_TIMEOUT
DELIVERY_JOB_TIMEOUT_MARGIN = 60  # seconds a batch job keeps after its last transaction, to record the outcomes
# seconds RQ gives one batch job: by default the batch deadline + the longest transaction + the margin, so the SMTP
# stage timeouts always fire before the job's (a lower value fails at start-up)
DELIVERY_JOB_TIMEOUT = env_int(
    "DELIVERYHUB_JOB_TIMEOUT",
    math.ceil(DELIVERY_BATCH_SECONDS + SMTP_TRANSACTION_MAX_SECONDS + DELIVERY_JOB_TIMEOUT_MARGIN),
    old=("DELIVERYHUB_DELIVERY_JOB_TIMEOUT",),
)
if DELIVERY_JOB_TIMEOUT < DELIVERY_BATCH_SECONDS + SMTP_TRANSACTION_MAX_SECONDS + DELIVERY_JOB_TIMEOUT_MARGIN:
    raise ImproperlyConfigured(
        f"DELIVERYHUB_JOB_TIMEOUT={DELIVERY_JOB_TIMEOUT} is shorter than DELIVERYHUB_BATCH_SECONDS "
        f"({DELIVERY_BATCH_SECONDS}) + the longest SMTP transaction the stage timeouts allow "
        f"({SMTP_TRANSACTION_MAX_SECONDS:g}) + {DELIVERY_JOB_TIMEOUT_MARGIN} s: the job would time out before the "
        f"SMTP timeouts fire. Raise it, or lower the SMTP timeouts or the batch seconds."
    )
# outcomes are recorded every this many messages ...
DELIVERY_FLUSH_MESSAGES = env_int("DELIVERYHUB_FLUSH_MESSAGES", 25)
# ... or every this many seconds, whichever comes first (a 250 is in the database soon after it came)
DELIVERY_FLUSH_SECONDS = env_float("DELIVERYHUB_FLUSH_SECONDS", 0.25)
# a lost database connection while recording outcomes: reconnect and retry (with backoff) for this long
DELIVERY_WRITE_RETRY_SECONDS = env_int("DELIVERYHUB_WRITE_RETRY_SECONDS", 120)
# connections of one batch at once
DELIVERY_BATCH_CONCURRENCY = env_int(
    "DELIVERYHUB_BATCH_CONCURRENCY", 100, old=("DELIVERYHUB_DELIVERY_BATCH_CONCURRENCY",)
)
# no route configured: deliver everything to the capture server
DEMO_MODE = env_bool("DELIVERYHUB_DEMO_MODE", not PRODUCTION, old=("DELIVERYHUB_DEMO",))
CAPTURE_SMTP_HOST = env_str("DELIVERYHUB_CAPTURE_SMTP_HOST", "127.0.0.1")  # demo capture server address
CAPTURE_SMTP_PORT = env_int("DELIVERYHUB_CAPTURE_SMTP_PORT", 2526)  # demo capture server port
SMTPD_HOST = env_str("DELIVERYHUB_SMTPD_HOST", "127.0.0.1")  # submission listener address
SMTPD_PORT = env_int("DELIVERYHUB_SMTPD_PORT", 2587)  # submission listener port
SMTPD_TLS_CERT = env_str("DELIVERYHUB_SMTPD_TLS_CERT", "")  # PEM certificate; empty in dev: self-signed under var/
SMTPD_TLS_KEY = env_str("DELIVERYHUB_SMTPD_TLS_KEY", "")  # PEM private key of that certificate
SMTPD_HOSTNAME = env_str("DELIVERYHUB_SMTPD_HOSTNAME", "localhost")  # name the listener announces
SMTPD_INBOUND_HOST = env_str("DELIVERYHUB_SMTPD_INBOUND_HOST", SMTPD_HOST)  # MX of the return-path hosts (bounces)
SMTPD_INBOUND_PORT = env_int("DELIVERYHUB_SMTPD_INBOUND_PORT", 2525)  # 25 in production; 0: no inbound port
# This node's delivery queue ("delivery-<node>"): its workers run `rqworker delivery-<node>`.
RQ_QUEUES[f"delivery-{NODE_NAME}"] = {**REDIS_CONNECTION, "DEFAULT_TIMEOUT": DELIVERY_JOB_TIMEOUT}

# Sending domains (domains app): DNS verification, DKIM rotation, the records domains publish.
DOMAIN_RECHECK_SECONDS = env_int("DELIVERYHUB_DOMAIN_RECHECK_SECONDS", 3600)  # periodic DNS re-verification
# old key stays published after
DKIM_ROTATION_GRACE_SECONDS = env_int(
    "DELIVERYHUB_DKIM_ROTATION_GRACE_SECONDS", 7 * 86400, old=("DELIVERYHUB_DKIM_GRACE_SECONDS",)
)
BOUNCE_MX_HOST = env_str("DELIVERYHUB_BOUNCE_MX_HOST", SMTPD_HOSTNAME)  # MX of return-path hosts: our SMTP listener
SPF_INCLUDE = env_str("DELIVERYHUB_SPF_INCLUDE", "")  # a domain whose SPF lists all our IPs; empty: ip4:/ip6: terms
MTA_STS_POLICY_HOST = env_str("DELIVERYHUB_MTA_STS_POLICY_HOST", "")  # host serving MTA-STS policies (CNAME target)

# Monitoring (reports app): roll-ups, /metrics, health checks, alerts. docs/monitoring.md.
ROLLUPS_ENABLED = env_bool("DELIVERYHUB_ROLLUPS_ENABLED", True)  # the roll-up job counts attempts/events (off: nothing)
ROLLUP_INTERVAL_SECONDS = env_int("DELIVERYHUB_ROLLUP_INTERVAL_SECONDS", 15)  # how often the roll-up job runs
ROLLUP_SETTLE_SECONDS = env_int("DELIVERYHUB_ROLLUP_SETTLE_SECONDS", 5)  # rows younger than this wait for the next run
ROLLUP_CHUNK = env_int("DELIVERYHUB_ROLLUP_CHUNK", 5000)  # rows of each source counted per transaction
ROLLUP_MAX_ROWS_PER_RUN = env_int("DELIVERYHUB_ROLLUP_MAX_ROWS_PER_RUN", 200000)  # then the next run goes on
ROLLUP_MINUTE_RETENTION_HOURS = env_int("DELIVERYHUB_ROLLUP_MINUTE_RETENTION_HOURS", 48)  # per-minute counters kept
ROLLUP_HOUR_RETENTION_DAYS = env_int("DELIVERYHUB_ROLLUP_HOUR_RETENTION_DAYS", 400)  # per-hour counters kept
# /metrics: platform API keys (dh_op_…, Bearer) always; without a key, only clients in these networks (CIDR list).
METRICS_ALLOWED_NETWORKS = env_list("DELIVERYHUB_METRICS_ALLOWED_NETWORKS", [])
READYZ_SCHEDULER_MAX_AGE = env_int("DELIVERYHUB_READYZ_SCHEDULER_MAX_AGE", 60)  # /readyz: scheduler ticked within
ALERTS_ENABLED = env_bool("DELIVERYHUB_ALERTS_ENABLED", True)  # the alert evaluation job runs every minute
ALERT_EMAIL_FROM = env_str("DELIVERYHUB_ALERT_EMAIL_FROM", "alerts@localhost")  # From of alert emails
# Alert email through a relay (smtp://[user:pass@]host:port, smtps://… or ?starttls=1), independent of DeliveryHub's
# own delivery; else, when ALERT_EMAIL_TENANT names a tenant, through DeliveryHub itself (that tenant's domain of
# ALERT_EMAIL_FROM, its transactional pool).
ALERT_SMTP_URL = env_str("DELIVERYHUB_ALERT_SMTP_URL", "")
ALERT_EMAIL_TENANT = env_str("DELIVERYHUB_ALERT_EMAIL_TENANT", "")
ALERT_WEBHOOK_TIMEOUT = env_float("DELIVERYHUB_ALERT_WEBHOOK_TIMEOUT", 10)  # seconds per alert webhook request
ALERT_PREVIEW_DAYS = 7  # a rule's preview: how often it would have fired over this many days (hourly roll-ups)

# Events and webhooks (queues/webhooks/): the event stream, batched signed deliveries, their retries.
EVENT_STREAM_SETTLE_SECONDS = env_int("DELIVERYHUB_EVENT_STREAM_SETTLE_SECONDS", 120)  # an event id not committed
# after this long never will be (longer than any writer's transaction): the sequencer stops looking for it
EVENT_STREAM_CHUNK = env_int("DELIVERYHUB_EVENT_STREAM_CHUNK", 5000)  # events numbered per sequencer transaction
WEBHOOK_DISPATCH_INTERVAL = env_int("DELIVERYHUB_WEBHOOK_DISPATCH_INTERVAL", 1)  # seconds between dispatcher runs
WEBHOOK_BATCH_SIZE = env_int("DELIVERYHUB_WEBHOOK_BATCH_SIZE", 100)  # events per POST at most
WEBHOOK_TIMEOUT_SECONDS = env_int("DELIVERYHUB_WEBHOOK_TIMEOUT_SECONDS", 10)  # connect + answer of one POST
WEBHOOK_RETRY_BASE_SECONDS = env_int("DELIVERYHUB_WEBHOOK_RETRY_BASE_SECONDS", 10)  # first retry; doubles each time
WEBHOOK_RETRY_MAX_SECONDS = env_int("DELIVERYHUB_WEBHOOK_RETRY_MAX_SECONDS", 4 * 3600)  # longest wait between tries
WEBHOOK_DISABLE_AFTER_SECONDS = env_int("DELIVERYHUB_WEBHOOK_DISABLE_AFTER_SECONDS", 86400)  # failing this long: off
WEBHOOK_SECRET_GRACE_SECONDS = env_int("DELIVERYHUB_WEBHOOK_SECRET_GRACE_SECONDS", 86400)  # old secret still signs
WEBHOOK_SENDS_PER_RUN = env_int("DELIVERYHUB_WEBHOOK_SENDS_PER_RUN", 50)  # batches one endpoint's job sends in a row

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("DELIVERYHUB_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        # pyHanko logs a traceback for every signature by an untrusted certificate; verify_file reports it instead
        "pyhanko.sign.validation": {"level": "ERROR"},
        "mail.log": {"level": env_str("DELIVERYHUB_SMTPD_LOG_LEVEL", "WARNING")},  # aiosmtpd: a line per command
    },
}
