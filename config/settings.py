"""Settings, read from the environment.

The defaults are the embedded development setup (`make run`): SQLite with immediate
transactions and Celery on the kombu filesystem transport, everything under ./var/.
Production sets DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis or RabbitMQ).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def envbool(name: str, default: str) -> bool:
    return os.environ.get(name, default).lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: str) -> int:
    return int(os.environ.get(name, default))


def envsecret(name: str, default: str = "") -> str:
    """Read NAME, or the contents of the file named by NAME_FILE (Docker/K8s secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


DEBUG = envbool("DEBUG", "false")
# Without SECRET_KEY (or SECRET_KEY_FILE) a fixed development key is used, so that `make run`,
# the tests, mypy and `makemigrations` need no configuration. A web process refuses to start on it
# unless DEBUG is on (config/wsgi.py: production must set a key); `check --deploy` flags it too.
DEV_SECRET_KEY = "dev-only-insecure-key-change-me"
SECRET_KEY = envsecret("SECRET_KEY") or DEV_SECRET_KEY
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "crispy_forms",
    "crispy_bootstrap5",
    "axes",
    "orchestration",
    "records",
    "workitems",
    "demo",
]

MIDDLEWARE = [
    # First: /healthz and /readyz answer a probe that asks by IP address over HTTP.
    "config.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Near the outside: a database that is restarting answers 503 "try again", not a 500.
    "config.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CsrfViewMiddleware: its process_view reads the body of a form POST, and an
    # oversized upload must be refused before anything reads it.
    "config.middleware.RequestSizeLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.middleware.HtmxLoginRedirectMiddleware",
    # Last: turns a login refused by django-axes into our lock-out page (config/auth.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "workitems.context_processors.my_work",
                "orchestration.context_processors.monitor_tabs",
                "django.template.context_processors.csp",
            ],
            # `{{ user|person }}`: people by full name on every page (orchestration/people.py).
            "builtins": ["orchestration.templatetags.people"],
        },
    },
]

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "0"),
        # A persistent connection is checked (a `SELECT 1` on the raw connection, once per
        # request or task that reuses it) before it is used: after a database restart the first
        # request on each process gets a new connection instead of an error.
        conn_health_checks=envbool("DB_CONN_HEALTH_CHECKS", "true"),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A separate worker process writes too: take the write lock at BEGIN and wait for it,
    # instead of failing with "database is locked" when a read transaction upgrades.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
    # The test database is a file (worker processes started by tests open it too), named per test
    # session: two test runs at once in one checkout must not share it. Processes a session starts
    # inherit the name through the environment.
    os.environ.setdefault("FLOW_SQLITE_TEST_NAME", f"test-{os.getpid()}.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / os.environ["FLOW_SQLITE_TEST_NAME"])}

else:
    # Options in the URL's query string arrive as text: `?server_side_binding=false&
    # prepare_threshold=none` must reach psycopg as a boolean and None (or a number).
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    for _key, _value in list(_options.items()):
        if isinstance(_value, str) and _value.lower() in ("true", "false"):
            _options[_key] = _value.lower() == "true"
        elif isinstance(_value, str) and _value.lower() == "none":
            _options[_key] = None
        elif isinstance(_value, str) and _value.isdigit():
            _options[_key] = int(_value)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Parameters bound by the server and statements prepared after 5 uses on a connection:
        # the engine's few hot statements are then planned once per connection, not at every
        # call (PostgreSQL's CPU per W1 run 9 → 4 ms, bench/README.md). Behind a connection
        # pooler in transaction mode that predates prepared statements (PgBouncer < 1.21), set
        # `?prepare_threshold=none` in DATABASE_URL.
        _options.setdefault("server_side_binding", True)
        _options.setdefault("prepare_threshold", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out username+address before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# Dates are written one way everywhere (config/formats/en/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Email ------------------------------------------------------------------------------------
# Django 6.1 MAILERS. EMAIL_URL picks the backend: "smtp://user:pass@host:port" (add ?tls=1),
# "file:///path" (development Outbox) or "console:" / "locmem:".
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "orchestration@localhost")
EMAIL_OUTBOX_DIR = VAR_DIR / "outbox"


def _mailer_from_url(url: str) -> dict[str, object]:
    from urllib.parse import parse_qs, unquote, urlparse

    parts = urlparse(url)
    if parts.scheme == "file":
        folder = Path(parts.path or EMAIL_OUTBOX_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        return {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": str(folder)},
        }
    if parts.scheme in {"console", "locmem"}:
        return {"BACKEND": f"django.core.mail.backends.{parts.scheme}.EmailBackend"}
    query = parse_qs(parts.query)
    return {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": parts.hostname or "localhost",
            "port": parts.port or 25,
            "username": unquote(parts.username or ""),
            "password": unquote(parts.password or envsecret("EMAIL_PASSWORD")),
            "use_tls": query.get("tls", ["0"])[0] == "1",
            "timeout": 10,
        },
    }


MAILERS = {"default": _mailer_from_url(os.environ.get("EMAIL_URL", f"file://{EMAIL_OUTBOX_DIR}"))}

# --- Celery -----------------------------------------------------------------------------------
# (With a host: a bare "filesystem://" makes kombu warn "No hostname was supplied" on every command
# that sends a task; the filesystem transport ignores the host.)
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "") or "filesystem://localhost/"
if CELERY_BROKER_URL == "filesystem://":
    CELERY_BROKER_URL = "filesystem://localhost/"
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "false")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task gets the task redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Workers log through LOGGING below (the context filter and LOG_FORMAT), not Celery's own setup.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connection before and after every task (so every
# task opened a new PostgreSQL connection) unless this is set; config/celery.py lets Django
# decide instead, as it does per request: DB_CONN_MAX_AGE, and broken connections.
CELERY_DB_REUSE_MAX = 1_000_000
# Publishing must fail fast when the broker is away: a web request that launches a run must not
# hang on it. The state change is already committed (the step row is queued in the database, the
# outbox the sweep relays: docs/reliability.md), so a publish that fails is logged and left to
# the sweep. Celery's default policy retries 3 times; here 2 tries 0.2 s apart, each connect
# bounded by the transport's connect timeout.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0.2,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_CONNECTION_TIMEOUT = float(os.environ.get("CELERY_BROKER_CONNECT_TIMEOUT", "2"))
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        # A broker host that does not answer (down, firewalled) fails the connect in 2 s.
        "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
        # A publish on a half-open connection gives up; longer than the 1 s BRPOP of workers.
        "socket_timeout": 10,
    }
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_BEAT_SCHEDULE = {
    "orchestration-sweep": {
        "task": "orchestration.tasks.sweep",
        "schedule": float(os.environ.get("ORCHESTRATION_SWEEP_SECONDS", "30")),
    },
    "workitems-drafts-cleanup": {"task": "workitems.tasks.cleanup_drafts", "schedule": 3600.0},
    # Reminders and escalations of work items' SLAs (workitems/sla.py).
    "workitems-sla-tick": {
        "task": "workitems.tasks.sla_tick",
        "schedule": float(os.environ.get("WORKITEMS_SLA_TICK_SECONDS", "60")),
    },
    # The Analytics page's rollups (orchestration/rollup.py).
    "orchestration-analytics-refresh": {
        "task": "orchestration.tasks.analytics_refresh",
        "schedule": float(os.environ.get("ORCHESTRATION_ROLLUP_REFRESH_SECONDS", "60")),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Orchestration engine ---------------------------------------------------------------------
# A background step claimed by a worker that shows no progress after this long is re-dispatched.
ORCHESTRATION_STEP_TIMEOUT_SECONDS = envint("ORCHESTRATION_STEP_TIMEOUT_SECONDS", "600")
# Retry backoff for background steps: base * 2**(attempt-1), capped.
# The sweep re-sends a queued attempt nobody claimed this long past its due time (its message was
# lost). An attempt whose publish failed is re-sent by the next sweep, without waiting for this.
ORCHESTRATION_REDISPATCH_GRACE_SECONDS = float(os.environ.get("ORCHESTRATION_REDISPATCH_GRACE_SECONDS", "60"))
# Test-only: the sweep sleeps this long while it holds its lock (tests/faults/test_beat_twice.py).
ORCHESTRATION_SWEEP_TEST_DELAY_SECONDS = float(os.environ.get("ORCHESTRATION_SWEEP_TEST_DELAY_SECONDS", "0"))
# Analytics rollups (orchestration/rollup.py): each refresh re-reads the events of this many
# seconds before its last scan (an engine transaction lasting longer than this, less the refresh
# interval, could go unseen until `manage.py analytics_refresh --rebuild`), and rebuilds at most
# this many changed partitions (the rest wait for the next refresh).
ORCHESTRATION_ROLLUP_MARGIN_SECONDS = float(os.environ.get("ORCHESTRATION_ROLLUP_MARGIN_SECONDS", "300"))
ORCHESTRATION_ROLLUP_PARTITIONS_PER_REFRESH = envint("ORCHESTRATION_ROLLUP_PARTITIONS_PER_REFRESH", "500")
ORCHESTRATION_RETRY_BASE_SECONDS = float(os.environ.get("ORCHESTRATION_RETRY_BASE_SECONDS", "5"))
ORCHESTRATION_RETRY_MAX_SECONDS = float(os.environ.get("ORCHESTRATION_RETRY_MAX_SECONDS", "600"))
# Python modules imported when the orchestration app is ready, comma-separated: where a project
# registers its own Python flows (`@register_flow("name")`) and flow actions.
ORCHESTRATION_FLOW_MODULES = [
    m.strip() for m in os.environ.get("ORCHESTRATION_FLOW_MODULES", "").split(",") if m.strip()
]
# The email outbox (orchestration/outbox.py): tries before an email is `failed`, the backoff
# between tries (base * 2**(tries-1), capped: 30 s, 1, 2, 4, 8, 16 min, then 30 min: about
# 2 h 30 for 9 tries), how long a delivery holds a row before it is taken as lost, and how long
# past due a pending row waits for its own task before the sweep's relay sends another.
# An event name orchestration/events.py does not list raises (the tests) instead of being logged.
ORCHESTRATION_STRICT_EVENTS = envbool("ORCHESTRATION_STRICT_EVENTS", "false")
# The largest definitions file the upload page and validate/import_definitions take.
ORCHESTRATION_DEFINITION_MAX_BYTES = envint("ORCHESTRATION_DEFINITION_MAX_BYTES", str(1024 * 1024))
ORCHESTRATION_EMAIL_MAX_ATTEMPTS = envint("ORCHESTRATION_EMAIL_MAX_ATTEMPTS", "9")
ORCHESTRATION_EMAIL_RETRY_BASE_SECONDS = float(os.environ.get("ORCHESTRATION_EMAIL_RETRY_BASE_SECONDS", "30"))
ORCHESTRATION_EMAIL_RETRY_MAX_SECONDS = float(os.environ.get("ORCHESTRATION_EMAIL_RETRY_MAX_SECONDS", "1800"))
ORCHESTRATION_EMAIL_CLAIM_SECONDS = float(os.environ.get("ORCHESTRATION_EMAIL_CLAIM_SECONDS", "120"))
ORCHESTRATION_EMAIL_RELAY_GRACE_SECONDS = float(
    os.environ.get("ORCHESTRATION_EMAIL_RELAY_GRACE_SECONDS", "30")
)
ORCHESTRATION_HTTP_ALLOWED_HOSTS = [
    h for h in os.environ.get("ORCHESTRATION_HTTP_ALLOWED_HOSTS", "").split(",") if h
]

# Every line carries the run / step / work item / task it is about (orchestration.logcontext);
# LOG_FORMAT=json writes one JSON object per line for log shippers (docs/operations.md).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
# /metrics (orchestration/metrics.py): a bearer token for Prometheus; the database gauges are
# read at most once per this many seconds per process.
METRICS_TOKEN = envsecret("METRICS_TOKEN")
METRICS_CACHE_SECONDS = float(os.environ.get("METRICS_CACHE_SECONDS", "15"))
# --- API tokens -------------------------------------------------------------------------------
# Lifetime of a new token unless its creator picks another (or none: `--days 0` / "never").
API_TOKEN_DAYS = envint("API_TOKEN_DAYS", "90")

# --- Security (docs/security.md) --------------------------------------------------------------
# Login throttling (django-axes): AXES_FAILURE_LIMIT failed logins for one username from one
# address lock that pair out for AXES_COOLOFF_MINUTES; `manage.py axes_reset` lifts every lock.
# Attempts are rows in the database, so every web process sees the same counts.
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = dt.timedelta(minutes=envint("AXES_COOLOFF_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a successful login forgets the failures before it
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_CALLABLE = "config.auth.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# No "AXES: BEGIN …" banner on every process start and management command; lock-outs are still
# logged (axes.handlers, WARNING).
AXES_VERBOSE = False
# The client address is REMOTE_ADDR unless PROXY_COUNT says how many reverse proxies append to
# X-Forwarded-For: trusting that header without a proxy would let a client pick its address.
PROXY_COUNT = envint("PROXY_COUNT", "0")
if PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]

# HTTPS=true (the site is served over TLS) turns on the secure defaults below; each can still be
# set on its own. HSTS only over TLS: a browser that saw it refuses plain HTTP for a year.
HTTPS = envbool("HTTPS", "false")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", str(HTTPS))
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", str(HTTPS))
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", str(HTTPS))
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000" if HTTPS else "0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", str(HTTPS))
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", str(HTTPS))
# Behind a TLS-terminating proxy the request reaches Django as plain HTTP: believe the proxy's
# X-Forwarded-Proto (only set this when the proxy overwrites that header from clients).
if envbool("TRUST_X_FORWARDED_PROTO", "false"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Everything from this origin, nothing inline: no inline scripts or styles, no eval (htmx runs
# with allowEval=false and no injected indicator style, see templates/_base.html). `frame-src
# 'self'` and `form-action 'self'` keep forms and the Outbox preview on this site.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "frame-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

# --- Request sizes ----------------------------------------------------------------------------
# RequestSizeLimitMiddleware answers 413 to a body larger than this before reading it (views can
# lower it, the definitions upload does). Keep the reverse proxy's limit (nginx
# client_max_body_size) at or above it. Bodies Django parses in memory (form fields, JSON) are
# capped lower; uploaded files stay in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, then spill to disk.
MAX_REQUEST_BYTES = envint("MAX_REQUEST_BYTES", str(2 * 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = min(MAX_REQUEST_BYTES, 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = min(MAX_REQUEST_BYTES, 2 * 1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "orchestration.logcontext.ContextFilter"},
        "routine_sweep": {"()": "orchestration.logcontext.RoutineSweepFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"},
        "json": {"()": "config.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["context"],
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Celery's lines about the sweep every 30 s go to DEBUG (logcontext.RoutineSweepFilter).
    "loggers": {
        name: {"filters": ["routine_sweep"]}
        for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace")
    },
}
# Keep Celery's INFO lines about each sweep (beat sent it, the worker ran it and what it returned).
ORCHESTRATION_LOG_SWEEP_TASKS = envbool("ORCHESTRATION_LOG_SWEEP_TASKS", "false")
