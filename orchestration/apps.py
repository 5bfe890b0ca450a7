from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    verbose_name = "Orchestration"

    def ready(self) -> None:
        # Registers the background step kind and the built-in flow actions.
        from . import flows, services  # noqa: F401
