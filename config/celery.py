from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


_task_log_context: dict[str, Any] = {}


@task_prerun.connect
def _bind_task_id(task_id: str | None = None, **kwargs: Any) -> None:
    """Every log line of a task names it (orchestration.logcontext)."""
    from orchestration import logcontext

    if task_id:
        cm = logcontext.bind(task_id=task_id)
        cm.__enter__()
        _task_log_context[task_id] = cm


@task_postrun.connect
def _unbind_task_id(task_id: str | None = None, **kwargs: Any) -> None:
    cm = _task_log_context.pop(task_id or "", None)
    if cm is not None:
        cm.__exit__(None, None, None)


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(sender: Any = None, **kwargs: Any) -> None:
    """Around each task, close the database connection if it is broken or older than
    DB_CONN_MAX_AGE, as Django does around each request (CELERY_DB_REUSE_MAX keeps Celery's own
    fixup from closing it every time: with persistent connections a task then costs no new
    PostgreSQL connection). Eager tasks run inside the caller's transaction: leave them be."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
