from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    verbose_name = "Orchestration"

    def ready(self) -> None:
        # Registers the background step kind and the built-in flow actions.
        from . import flows, services  # noqa: F401

        # A project's own Python flows (`@register_flow`) live in modules this app does not
        # know: ORCHESTRATION_FLOW_MODULES names them. A name that does not import fails start-up
        # (ImportError), rather than every run that calls one of its flows later.
        for module in getattr(settings, "ORCHESTRATION_FLOW_MODULES", []):
            import_module(module)
