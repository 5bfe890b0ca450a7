from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    verbose_name = "Orchestration"

    def ready(self) -> None:
        # Registers the background step kind and the built-in flow actions.
        from . import flows, services  # noqa: F401
        from .registry import MonitorTab, register_monitor_tab

        runs = {"runs", "runs_bulk", "run", "run_action", "step_action"}
        definitions = {
            "orchestrations",
            "orchestration",
            "version",
            "version_activate",
            "version_compare",
            "version_migrate",
            "upload",
        }
        register_monitor_tab(
            MonitorTab(
                label="Runs",
                url_name="monitor:runs",
                perms=("orchestration.view_run",),
                current=frozenset(f"monitor:{n}" for n in runs),
                order=10,
            )
        )
        register_monitor_tab(
            MonitorTab(
                label="Orchestrations",
                url_name="monitor:orchestrations",
                perms=("orchestration.view_run", "orchestration.view_orchestration"),
                current=frozenset(f"monitor:{n}" for n in definitions),
                order=30,
            )
        )
        register_monitor_tab(
            MonitorTab(
                label="Analytics",
                url_name="monitor:analytics",
                perms=("orchestration.view_run",),
                current=frozenset({"monitor:analytics", "monitor:analytics_orchestration"}),
                order=40,
            )
        )

        # A deleted run leaves no event: the Analytics rollup of its day is marked out of date.
        from django.db.models.signals import post_delete

        from .models import Run

        post_delete.connect(_run_deleted, sender=Run, dispatch_uid="rollup_run_deleted")

        # A project's own Python flows (`@register_flow`) live in modules this app does not
        # know: ORCHESTRATION_FLOW_MODULES names them. A name that does not import fails start-up
        # (ImportError), rather than every run that calls one of its flows later.
        for module in getattr(settings, "ORCHESTRATION_FLOW_MODULES", []):
            import_module(module)


def _run_deleted(sender: object, instance: object, **kwargs: object) -> None:
    from .rollup import forget_run

    forget_run(instance)  # type: ignore[arg-type]
