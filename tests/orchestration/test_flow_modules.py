"""ORCHESTRATION_FLOW_MODULES: modules imported when the orchestration app is ready, where a
project registers its Python flows; a name that does not import stops start-up."""

from __future__ import annotations

import sys

import pytest
from django.apps import apps

from orchestration.registry import PYTHON_FLOWS

MODULE = "tests.orchestration.settings_flows"


def test_the_named_modules_are_imported_when_the_app_is_ready(settings):
    sys.modules.pop(MODULE, None)
    PYTHON_FLOWS.pop("from_a_settings_module", None)
    settings.ORCHESTRATION_FLOW_MODULES = [MODULE]
    apps.get_app_config("orchestration").ready()
    assert MODULE in sys.modules
    assert PYTHON_FLOWS["from_a_settings_module"](None) == {"greeting": "hello"}  # type: ignore[arg-type]


def test_a_module_that_does_not_import_fails_start_up(settings):
    settings.ORCHESTRATION_FLOW_MODULES = ["tests.orchestration.no_such_module"]
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        apps.get_app_config("orchestration").ready()
