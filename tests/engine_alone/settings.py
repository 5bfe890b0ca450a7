"""The orchestration app alone: no records, no workitems, no demo (tests/engine_alone/)."""

from __future__ import annotations

import copy
from typing import Any

from config import settings as _project

# Everything the project sets (database, Celery, the engine's settings), then the apps cut down.
globals().update({name: copy.deepcopy(value) for name, value in vars(_project).items() if name.isupper()})

INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "orchestration"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tests.engine_alone.urls"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
_templates: dict[str, Any] = copy.deepcopy(_project.TEMPLATES[0])
_templates["OPTIONS"]["context_processors"] = ["django.template.context_processors.request"]
TEMPLATES = [_templates]
DATABASES: dict[str, Any] = copy.deepcopy(_project.DATABASES)
DATABASES["default"].setdefault("TEST", {})
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["TEST"]["NAME"] = f"test_{DATABASES['default']['NAME']}_engine_alone"
