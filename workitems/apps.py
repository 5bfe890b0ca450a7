from django.apps import AppConfig


class WorkitemsConfig(AppConfig):
    name = "workitems"
    verbose_name = "Work items"

    def ready(self) -> None:
        from orchestration.events import register_events
        from orchestration.metrics import register_gauge
        from orchestration.registry import (
            MonitorTab,
            register_api_paths,
            register_email_renderer,
            register_monitor_tab,
            register_rollup_part,
            register_run_work,
            register_work_figures,
            register_work_holders,
        )
        from orchestration.validation import ASSIGNEE_CHECKS

        from . import (
            analytics,
            delegation,
            emails,
            events,
            metrics,
            openapi,
            panels,
            selectors,
            services,
            sla,
        )

        register_gauge(metrics.work_items)
        register_events(events.EVENTS)  # workitems.item.*: orchestration/events.py lists them all

        register_email_renderer("assignment", emails.assignment_email_render)
        register_email_renderer("rule", sla.rule_email_render)  # SLA reminders and escalations
        if services.check_assignee not in ASSIGNEE_CHECKS:
            ASSIGNEE_CHECKS.append(services.check_assignee)
        panels.register()  # the Work Guide on record pages
        register_work_holders(selectors.step_holders)  # "held by" on the run pages
        register_run_work(sla.run_work)  # links, due times, priorities and SLA state on the run page
        delegation.connect_signals()  # a saved absence is routed at once (its cache forgotten)
        register_rollup_part(analytics.rollup_part, analytics.TABLE)  # their rows of the Analytics rollups
        register_work_figures(analytics.work_figures)  # breaches and open work on the Analytics page
        # The work item endpoints (workitems/api_urls.py) in the API's OpenAPI document.
        register_api_paths(paths=openapi.PATHS, schemas=openapi.SCHEMAS)
        register_monitor_tab(
            MonitorTab(
                label="Work items",
                url_name="workitems:manage",
                perms=("workitems.view_workitem",),
                current=frozenset({"workitems:manage"}),
                order=20,
            )
        )
