from django.apps import AppConfig


class WorkitemsConfig(AppConfig):
    name = "workitems"
    verbose_name = "Work items"

    def ready(self) -> None:
        from orchestration.metrics import register_gauge
        from orchestration.registry import register_email_renderer
        from orchestration.validation import ASSIGNEE_CHECKS

        from . import emails, metrics, panels, services

        register_gauge(metrics.work_items)

        register_email_renderer("assignment", emails.assignment_email_render)
        if services.check_assignee not in ASSIGNEE_CHECKS:
            ASSIGNEE_CHECKS.append(services.check_assignee)
        panels.register()  # the Work Guide on record pages
