"""Settings, read from the environment.

The defaults are the embedded development setup (`make run`): SQLite with immediate
transactions and Celery on the kombu filesystem transport, everything under ./var/.
Production sets DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis or RabbitMQ).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

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
SECRET_KEY = envsecret("SECRET_KEY", "dev-only-insecure-key-change-me")
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
    "orchestration",
    "records",
    "workitems",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.middleware.HtmxLoginRedirectMiddleware",
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
            ],
        },
    },
]

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "0"),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A separate worker process writes too: take the write lock at BEGIN and wait for it,
    # instead of failing with "database is locked" when a read transaction upgrades.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
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
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "false")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task gets the task redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connection before and after every task (so every
# task opened a new PostgreSQL connection) unless this is set; config/celery.py lets Django
# decide instead, as it does per request: DB_CONN_MAX_AGE, and broken connections.
CELERY_DB_REUSE_MAX = 1_000_000
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
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Orchestration engine ---------------------------------------------------------------------
# A background step claimed by a worker that shows no progress after this long is re-dispatched.
ORCHESTRATION_STEP_TIMEOUT_SECONDS = envint("ORCHESTRATION_STEP_TIMEOUT_SECONDS", "600")
# Retry backoff for background steps: base * 2**(attempt-1), capped.
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"
