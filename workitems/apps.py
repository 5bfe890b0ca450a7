from django.apps import AppConfig


class WorkitemsConfig(AppConfig):
    name = "workitems"
    verbose_name = "Work items"

    def ready(self) -> None:
        from orchestration.metrics import register_gauge
        from orchestration.registry import (
            MonitorTab,
            register_email_renderer,
            register_monitor_tab,
            register_work_holders,
        )
        from orchestration.validation import ASSIGNEE_CHECKS

        from . import emails, metrics, panels, selectors, services

        register_gauge(metrics.work_items)

        register_email_renderer("assignment", emails.assignment_email_render)
        if services.check_assignee not in ASSIGNEE_CHECKS:
            ASSIGNEE_CHECKS.append(services.check_assignee)
        panels.register()  # the Work Guide on record pages
        register_work_holders(selectors.step_holders)  # "held by" on the run pages
        register_monitor_tab(
            MonitorTab(
                label="Work items",
                url_name="workitems:manage",
                perms=("workitems.view_workitem",),
                current=frozenset({"workitems:manage"}),
                order=20,
            )
        )
