from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "demo"
    verbose_name = "Demo data"

    def ready(self) -> None:
        # Registers the demo's Python flows (@register_flow) in every process that loads Django:
        # web (import validation needs them), Celery workers (they run them) and commands.
        from . import flows  # noqa: F401
