"""Fault injection for tests/faults/test_worker_crash.py and test_smtp_down.py, loaded by the
worker through ORCHESTRATION_FLOW_MODULES (as a project registers its own Python flows).

Each fault happens once per test: it first creates a marker file under FAULT_MARKER_DIR (with
O_EXCL, so two processes cannot both inject it), then SIGKILLs its own process, a worker child
dying with no chance to clean up. Without FAULT_MARKER_DIR (the test process) nothing is injected.

- the Python flow `kill_once`: a flow action; placed in a flow after or between its effects;
- FAULT_KILL_AFTER_COMMIT=1: a `task_postrun` handler kills the child after a background step
  committed its result, before the task is acknowledged (acks_late: the broker redelivers it);
- FAULT_KILL_AFTER_SMTP=1: the SMTP backend kills the child right after the server accepted a
  message, before the outbox row is marked sent.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from celery.signals import task_postrun

from orchestration.registry import FlowContext, register_flow


def once(name: str) -> bool:
    """True the first time `name` is asked for (in any process), when injection is on."""
    folder = os.environ.get("FAULT_MARKER_DIR")
    if not folder:
        return False
    try:
        fd = os.open(Path(folder) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@register_flow("kill_once")
def kill_once(ctx: FlowContext) -> dict[str, Any]:
    if once(f"kill_once-{ctx.step_key}"):
        die()
    return {}


def _kill_after_commit(sender: Any = None, task: Any = None, retval: Any = None, **kwargs: Any) -> None:
    step_task = getattr(task, "name", "") == "orchestration.tasks.run_background_step"
    if step_task and retval == "completed" and once("after_commit"):
        die()


if os.environ.get("FAULT_KILL_AFTER_COMMIT") == "1":
    task_postrun.connect(_kill_after_commit, weak=False, dispatch_uid="fault_flows.kill_after_commit")

if os.environ.get("FAULT_KILL_AFTER_SMTP") == "1":
    from django.core.mail.backends.smtp import EmailBackend

    _send = EmailBackend.send_messages

    def _send_then_die(self: EmailBackend, messages: Any) -> int:
        sent = _send(self, messages)
        if sent and once("after_smtp"):
            die()
        return sent

    EmailBackend.send_messages = _send_then_die  # type: ignore[method-assign,assignment]
