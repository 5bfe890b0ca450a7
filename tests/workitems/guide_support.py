"""Builders and readers shared by the Work Guide tests (test_guide__*.py and the browser tests).

The claim process: a stage "Review" whose step "Check the claim" runs a two-screen flow (facts,
then decision), optionally followed by a second step, then a stage "Payout" for bob."""

from __future__ import annotations

import re
from typing import Any

from orchestration.models import Run
from orchestration.services import run_launch
from records.models import Record
from tests.factories import load, make_case, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemStatus

FACTS = {
    "key": "facts",
    "label": "Facts",
    "help": "What happened, in numbers.",
    "fields": [
        {
            "name": "amount",
            "type": "decimal",
            "label": "Amount claimed",
            "help": "In euros, without the sign.",
            "required": True,
            "min_value": 1,
        },
        {
            "name": "kind",
            "type": "choice",
            "label": "Kind",
            "choices": ["repair", "replace"],
            "required": True,
        },
    ],
}
DECISION = {
    "key": "decision",
    "label": "Decision",
    "fields": [
        {"name": "approved", "type": "boolean", "label": "Approve the claim"},
        {"name": "reason", "type": "text", "label": "Reason", "required": True, "max_length": 40},
    ],
}
TWO_SCREENS: list[dict[str, Any]] = [FACTS, DECISION]


def check_step(assignee: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "key": "check",
        "label": "Check the claim",
        "kind": "interactive",
        "flow": "claim_check",
        "assignee": assignee or {"user": "alice"},
        **extra,
    }


def define(
    *,
    assignee: dict[str, Any] | None = None,
    screens: list[dict[str, Any]] | None = None,
    then: list[dict[str, Any]] | None = None,
    inputs: list[dict[str, Any]] | None = None,
    step_inputs: dict[str, str] | None = None,
    variables: list[dict[str, Any]] | None = None,
    label: str = "Claim handling",
) -> None:
    """The claim process. `then`: more steps in the Review stage after "check"."""
    flows = [
        screen_flow("claim_check", screens=screens or TWO_SCREENS, inputs=inputs),
        screen_flow("payout_form", fields=[{"name": "paid", "type": "boolean", "label": "Paid"}]),
    ]
    flows[0]["label"] = "Claim check"
    doc = orchestration(
        "claims",
        variables=variables,
        stages=[
            {
                "key": "review",
                "label": "Review",
                "steps": [check_step(assignee, inputs=step_inputs or {}), *(then or [])],
            },
            {
                "key": "payout",
                "label": "Payout",
                "steps": [
                    {
                        "key": "pay",
                        "label": "Pay out",
                        "kind": "interactive",
                        "flow": "payout_form",
                        "assignee": {"user": "bob"},
                    }
                ],
            },
        ],
    )
    doc["label"] = label
    load(*flows, doc)


def then_approve(user: str = "alice") -> dict[str, Any]:
    """A second, sequential step in the Review stage: starts when "check" completes."""
    return {
        "key": "approve",
        "label": "Approve the payout",
        "kind": "interactive",
        "flow": "payout_form",
        "assignee": {"user": user},
        "start": {"after": ["check"]},
    }


def start(name: str = "Flooded kitchen", **values: Any) -> tuple[Record, Run]:
    case = make_case(name, **values)
    run = run_launch(orchestration="claims", record=case)
    run.refresh_from_db()
    return case, run


def item_of(run: Run, key: str = "check") -> WorkItem:
    return WorkItem.objects.get(run=run, step_run__key=key, status=WorkItemStatus.ASSIGNED)


def page_url(case: Record, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/records/case/{case.pk}/" + (f"?{query}" if query else "")


def panel(html: str) -> str:
    """The Work Guide panel out of a record page (fails the test when absent)."""
    match = re.search(r'<div id="panel-work_guide" class="record-panel">(.*?)</section>\s*</div>', html, re.S)
    assert match, "no Work Guide panel on the page"
    return match.group(1)


def post_screen(client: Any, item: WorkItem, screen: int, action: str, *, htmx: bool = True, **values: Any):  # type: ignore[no-untyped-def]
    """Send one screen as the form does: field names carry the `f-` prefix."""
    data: dict[str, Any] = {"screen": screen, "action": action}
    data.update({f"f-{k}": v for k, v in values.items()})
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(f"/work-items/{item.pk}/screen", data, **extra)


def text(html: str) -> str:
    """Visible-ish text: tags dropped, whitespace collapsed (for asserting sentences)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def field_error(html: str, item: WorkItem, name: str) -> str:
    match = re.search(
        rf'id="error_\d+_wi{item.pk}_f-{re.escape(name)}"[^>]*>\s*<strong>(.*?)</strong>', html, re.S
    )
    return match.group(1) if match else ""


def input_tag(html: str, item: WorkItem, name: str, element: str = "input") -> str:
    match = re.search(rf'<{element}\b[^>]*\bid="wi{item.pk}_f-{re.escape(name)}"[^>]*>', html)
    assert match, f"no field {name!r} in the item's form"
    return match.group(0)
