"""Web processes plan each PostgreSQL statement for its parameters (config/db.py,
prefer_custom_plans, called by config/wsgi.py); other processes keep the server's default."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.db import connection

from config.db import prefer_custom_plans


@pytest.fixture
def databases(settings: Any) -> dict[str, Any]:
    settings.DATABASES = copy.deepcopy(settings.DATABASES)
    return settings.DATABASES  # type: ignore[no-any-return]


def test_postgresql_databases_get_custom_plans_and_others_are_left_alone(databases: dict[str, Any]) -> None:
    databases["pg"] = {"ENGINE": "django.db.backends.postgresql", "OPTIONS": {"options": "-c work_mem=8MB"}}
    databases["lite"] = {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {}}
    databases["mine"] = {
        "ENGINE": "django.db.backends.postgresql",
        "OPTIONS": {"options": "-c plan_cache_mode=auto"},
    }
    prefer_custom_plans()
    prefer_custom_plans()  # twice changes nothing more
    assert databases["pg"]["OPTIONS"]["options"] == "-c work_mem=8MB -c plan_cache_mode=force_custom_plan"
    assert databases["lite"]["OPTIONS"] == {}
    assert databases["mine"]["OPTIONS"]["options"] == "-c plan_cache_mode=auto"  # the operator's choice


def test_the_wsgi_application_sets_it_before_connecting(databases: dict[str, Any], settings: Any) -> None:
    import importlib

    # A web process without DEBUG refuses the development key (tests/security/test_settings.py).
    settings.SECRET_KEY = "wsgi-test-" + "k" * 50

    import config.wsgi

    importlib.reload(config.wsgi)
    default = databases["default"]
    if default["ENGINE"] == "django.db.backends.postgresql":
        assert "plan_cache_mode=force_custom_plan" in default["OPTIONS"]["options"]
    else:
        assert "options" not in default.get("OPTIONS", {})


@pytest.mark.django_db
def test_a_connection_with_the_option_plans_for_each_execution() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("plan_cache_mode is PostgreSQL's")
    params = connection.get_connection_params()
    params["options"] = f"{params.get('options', '')} -c plan_cache_mode=force_custom_plan".strip()
    raw = connection.get_new_connection(params)
    try:
        with raw.cursor() as cursor:
            cursor.execute("SHOW plan_cache_mode")
            assert cursor.fetchone()[0] == "force_custom_plan"
    finally:
        raw.close()
