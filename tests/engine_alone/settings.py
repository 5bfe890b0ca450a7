"""The orchestration app alone: no records, no workitems, no demo (tests/engine_alone/)."""

from __future__ import annotations

from config.settings import *  # noqa: F403
from config.settings import DATABASES, TEMPLATES

INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "orchestration"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tests.engine_alone.urls"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
TEMPLATES = [
    {
        **TEMPLATES[0],
        "OPTIONS": {
            **TEMPLATES[0]["OPTIONS"],
            "context_processors": ["django.template.context_processors.request"],
        },
    }
]
DATABASES["default"].setdefault("TEST", {})
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["TEST"]["NAME"] = f"test_{DATABASES['default']['NAME']}_engine_alone"
