"""The builder's page (/builder/<id>/) for a large draft: 20 stages of 5 steps (100 steps: a
third interactive with an assignee, an SLA and an email, a third background, a third waits, with
`after` chains and a decision every fifth stage), a screen flow and an autolaunched flow.

    .venv/bin/python bench/builder.py --requests 30

Creates (or empties) the database in $DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/flow_builder_bench), migrates it, stores the draft, then
times GET requests through Django's test client in this process (DEBUG off, logged in, 2
warm-ups per URL, one request at a time): the page on its settings, on a step's form, on a
stage's form, the YAML view, and an edit (POST, htmx) with the region it renders. The time is
the view's: validation of the whole draft, the diagram's layout, the forms, the template."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import create_database, django_setup, timing_row  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/flow_builder_bench"
DB_URL = os.environ.get("DATABASE_URL", DEFAULT_DB)


def big_documents(stages: int = 20, steps: int = 5) -> dict[str, Any]:
    """The draft's documents: `stages` stages of `steps` steps each."""
    out: list[dict[str, Any]] = []
    for i in range(stages):
        items: list[dict[str, Any]] = []
        for j in range(steps):
            key = f"s{i}_t{j}"
            kind = ("interactive", "background", "wait")[j % 3]
            step: dict[str, Any] = {"key": key, "label": f"Step {i}.{j}", "kind": kind}
            if kind == "interactive":
                step.update(
                    flow="paperwork",
                    assignee={"group": "hr"},
                    sla={"due": "2 business days", "priority": "high"},
                    email={"subject": "Please look at {{ record.name }}"},
                    outputs={f"ok_{i}": "approved"} if j == 0 else {},
                )
            elif kind == "background":
                step.update(flow="provision", inputs={"who": "record.name"})
            else:
                step["wait"] = {"for": "1h"}
            if j >= 2:
                step["start"] = {"after": [f"s{i}_t{j - 2}"]}
            items.append({k: v for k, v in step.items() if v != {}})
        stage: dict[str, Any] = {"key": f"stage_{i}", "label": f"Stage {i}", "steps": items}
        if i % 5 == 4 and i + 1 < stages:
            stage["next"] = {
                "outcomes": [{"label": "approved", "when": f"vars.ok_{i - 4}", "goto": f"stage_{i + 1}"}],
                "default": "end",
            }
        out.append(stage)
    variables = [{"name": f"ok_{i}", "type": "boolean"} for i in range(stages)]
    return {
        "orchestration": {
            "kind": "orchestration",
            "api_name": "big_onboarding",
            "label": "Big onboarding",
            "start": {"type": "record", "record_type": "new_hire", "on": "create"},
            "variables": variables,
            "stages": out,
        },
        "flows": {
            "paperwork": {
                "kind": "screen_flow",
                "api_name": "paperwork",
                "screens": [
                    {"key": "one", "fields": [{"name": "approved", "type": "boolean"}]},
                    {"key": "two", "fields": [{"name": "note", "type": "text", "label": "Note"}]},
                ],
            },
            "provision": {
                "kind": "autolaunched_flow",
                "api_name": "provision",
                "inputs": [{"name": "who", "type": "text"}],
                "outputs": [{"name": "done", "type": "boolean"}],
                "actions": [{"type": "set_outputs", "values": {"done": "true"}}],
            },
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per URL")
    args = parser.parse_args()
    create_database(DB_URL)
    django_setup(DB_URL, DEBUG="false", SECRET_KEY="bench-builder-not-secret", ALLOWED_HOSTS="testserver")
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.test import Client

    from orchestration.builder.drafts import draft_new, draft_problems
    from orchestration.models import Draft
    from records.services import record_type_upsert

    call_command("migrate", verbosity=0)
    record_type_upsert(api_name="new_hire", label="New hire", fields=[{"name": "start_date", "type": "date"}])
    Group.objects.create(name="hr")
    admin = get_user_model().objects.create_superuser("benchadmin", "b@example.com", "pw")
    draft = draft_new(api_name="big_onboarding", actor=admin)
    Draft.objects.filter(pk=draft.pk).update(documents=big_documents())
    draft.refresh_from_db()
    problems = draft_problems(draft.documents)
    print(f"draft: 20 stages, 100 steps, {len(problems)} problem(s)", flush=True)
    assert not problems, problems

    client = Client()
    client.force_login(admin)
    base = f"/builder/{draft.pk}/"
    urls = [
        ("the page (settings)", base),
        ("the page on a step's form", f"{base}?el=step:stage_10/s10_t0"),
        ("the page on a stage's form", f"{base}?el=stage:stage_14"),
        ("the YAML view", f"{base}?el=yaml"),
    ]
    print("| request | requests | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|---:|")

    def report(label: str, times: list[float]) -> None:
        print(timing_row(label, times), flush=True)

    for label, url in urls:
        for _ in range(2):
            assert client.get(url).status_code == 200, url
        times = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, url
        report(label, times)
    # An edit through htmx: a step's label changed back and forth (each a revision).
    times = []
    for n in range(args.requests + 2):
        draft.refresh_from_db()
        data = {
            "op": "stage_save",
            "revision": draft.revision,
            "key": "stage_3",
            "new_key": "stage_3",
            "label": f"Stage 3 ({n})",
        }
        t0 = time.perf_counter()
        response = client.post(f"{base}edit/", data, HTTP_HX_REQUEST="true")
        took = (time.perf_counter() - t0) * 1000
        assert response.status_code == 200 and b"Stage 3 (" in response.content
        if n >= 2:
            times.append(took)
    report("an edit (htmx POST: save, validate, render the region)", times)


if __name__ == "__main__":
    main()
