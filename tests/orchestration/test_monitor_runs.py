"""Orchestration Runs page (monitoring): who may see it, each filter, the counts by status, keyset
pages, the in-place refresh, escaping, and a query count that does not grow with the page."""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orchestration import selectors
from orchestration.models import Run, RunStatus
from orchestration.selectors import RunFilter
from orchestration.services import run_cancel, run_launch
from records.models import Record
from records.services import record_create
from tests.factories import (
    UserFactory,
    auto_flow,
    grant,
    load,
    make_case,
    orchestration,
    screen_flow,
    ticket_type,
)

URL = "/monitor/runs/"
VIEW = "orchestration.view_run"


def review_stage(label: str = "Review") -> dict[str, Any]:
    step = {"key": "check", "kind": "interactive", "flow": "review", "assignee": {"user": "alice"}}
    return {"key": "review", "label": label, "steps": [step]}


def failing_stage() -> dict[str, Any]:
    step = {"key": "calc", "kind": "background", "flow": "boom", "max_attempts": 1}
    return {"key": "work", "label": "Work", "steps": [step]}


def define() -> None:
    """cases (an interactive review), failing (a background step that always fails), tickets (on
    another record type)."""
    ticket_type()
    load(
        screen_flow("review"),
        auto_flow("boom", outputs={"x": "1 / 0"}),
        orchestration("cases", stages=[review_stage()]),
        orchestration("failing", stages=[failing_stage()]),
        orchestration(
            "tickets", stages=[review_stage()], start={"type": "autolaunched", "record_type": "ticket"}
        ),
    )


def ticket(name: str) -> Record:
    from records.models import RecordType

    return record_create(
        record_type=RecordType.objects.get(api_name="ticket"), name=name, values={"title": name}
    )


def launch(name: str, record: Record, actor: Any = None) -> Run:
    run = run_launch(orchestration=name, record=record, actor=actor)
    run.refresh_from_db()
    return run


def world(personas: SimpleNamespace) -> SimpleNamespace:
    """Five runs, one of each kind a filter tells apart."""
    define()
    alpha = launch("cases", make_case("Alpha"), actor=personas.admin)
    beta = launch("failing", make_case("Beta"))
    gamma = launch("tickets", ticket("Gamma"))
    delta = launch("cases", make_case("Delta"))
    run_cancel(run_id=delta.pk, actor=personas.admin)
    # A second version of cases, with the review stage renamed.
    load(screen_flow("review"), orchestration("cases", stages=[review_stage("Second look")]))
    epsilon = launch("cases", make_case("Epsilon"))
    assert beta.status == RunStatus.ERROR and alpha.status == RunStatus.IN_PROGRESS
    return SimpleNamespace(alpha=alpha, beta=beta, gamma=gamma, delta=delta, epsilon=epsilon)


def shown(html: str) -> list[int]:
    """Ids of the runs in the table, top to bottom."""
    return [int(x) for x in re.findall(r'<tr data-run="(\d+)"', html)]


def counts(html: str) -> dict[str, int]:
    found = re.findall(r'data-status="(\w+)".*?class="run-count">(\d+)<', html, flags=re.S)
    return {status: int(n) for status, n in found}


@pytest.fixture
def viewer(personas):  # type: ignore[no-untyped-def]
    """charlie, who may look at runs and nothing more."""
    return grant(personas.charlie, VIEW)


@pytest.mark.django_db(transaction=True)
def test_the_page_lists_runs_newest_first_with_their_columns(client, personas, viewer):
    w = world(personas)
    client.force_login(viewer)
    resp = client.get(URL)
    html = resp.content.decode()
    assert shown(html) == [w.epsilon.pk, w.delta.pk, w.gamma.pk, w.beta.pk, w.alpha.pk]
    alpha_row = re.search(rf'<tr data-run="{w.alpha.pk}">(.*?)</tr>', html, flags=re.S).group(1)  # type: ignore[union-attr]
    assert f'href="{reverse("monitor:run", args=[w.alpha.pk])}"' in alpha_row
    assert "cases" in alpha_row and "v1" in alpha_row
    record = Record.objects.get(name="Alpha")
    assert f'href="/records/case/{record.pk}/">Alpha</a>' in alpha_row
    assert "In progress" in alpha_row and "text-bg-primary" in alpha_row
    assert "Review" in alpha_row  # the stage's label, not its key
    assert ">admin<" in alpha_row
    epsilon_row = re.search(rf'<tr data-run="{w.epsilon.pk}">(.*?)</tr>', html, flags=re.S).group(1)  # type: ignore[union-attr]
    assert "v2" in epsilon_row and "Second look" in epsilon_row
    beta_row = re.search(rf'<tr data-run="{w.beta.pk}">(.*?)</tr>', html, flags=re.S).group(1)  # type: ignore[union-attr]
    assert "Error" in beta_row and "text-bg-danger" in beta_row
    assert re.search(r"\d+ s<", beta_row)  # a duration


FILTERS = {
    "orchestration=cases": ["epsilon", "delta", "alpha"],
    "orchestration=cases&version=2": ["epsilon"],
    "orchestration=cases&version=1": ["delta", "alpha"],
    "status=error": ["beta"],
    "status=canceled": ["delta"],
    "stage=review": ["epsilon", "gamma", "alpha"],
    "stage=work": ["beta"],
    "record_type=ticket": ["gamma"],
    "record_type=case&status=in_progress": ["epsilon", "alpha"],
    "started_by=admin": ["alpha"],
    "q=ALP": ["alpha"],
    "q=a": ["delta", "gamma", "beta", "alpha"],
}


@pytest.mark.django_db(transaction=True)
def test_each_filter_narrows_the_list(client, personas, viewer):
    w = world(personas)
    client.force_login(viewer)
    for query, expected in FILTERS.items():
        html = client.get(f"{URL}?{query}").content.decode()
        assert shown(html) == [getattr(w, name).pk for name in expected], query


@pytest.mark.django_db(transaction=True)
def test_record_and_date_filters(client, personas, viewer):
    w = world(personas)
    client.force_login(viewer)
    html = client.get(f"{URL}?record={w.beta.record_id}").content.decode()
    assert shown(html) == [w.beta.pk]

    today = timezone.localdate()
    earlier = timezone.now() - dt.timedelta(days=10)
    Run.objects.filter(pk__in=[w.alpha.pk, w.beta.pk]).update(started_at=earlier)
    old_day = timezone.localtime(earlier).date().isoformat()
    html = client.get(f"{URL}?started_to={old_day}").content.decode()
    assert shown(html) == [w.beta.pk, w.alpha.pk]
    html = client.get(
        f"{URL}?started_from={today.isoformat()}&started_to={today.isoformat()}"
    ).content.decode()
    assert shown(html) == [w.epsilon.pk, w.delta.pk, w.gamma.pk]


@pytest.mark.django_db(transaction=True)
def test_bad_filter_values_are_reported_not_an_error(client, personas, viewer):
    w = world(personas)
    client.force_login(viewer)
    resp = client.get(f"{URL}?version=two&record=99999999999999999999999&started_from=yesterday&before=x")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "Enter a whole number." in html
    assert "Enter a valid date." in html
    assert len(shown(html)) == 5  # the invalid filters are ignored
    assert w.alpha.pk in shown(html)


@pytest.mark.django_db(transaction=True)
def test_counts_by_status_follow_the_other_filters(client, personas, viewer):
    world(personas)
    client.force_login(viewer)
    html = client.get(URL).content.decode()
    assert counts(html) == {
        "not_started": 0,
        "in_progress": 3,
        "completed": 0,
        "error": 1,
        "canceled": 1,
        "suspended": 0,
    }
    assert 'All <span class="run-count">5</span>' in html
    html = client.get(f"{URL}?orchestration=cases&status=in_progress").content.decode()
    # The badges count the orchestration's runs by status; the chosen status is marked current.
    assert counts(html)["in_progress"] == 2 and counts(html)["canceled"] == 1 and counts(html)["error"] == 0
    current = 'active" aria-current="true" data-status="in_progress"'
    assert f'{current} href="?orchestration=cases&amp;status=in_progress"' in html


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_log_in_and_others_refused(client, personas):
    resp = client.get(URL)
    assert resp.status_code == 302 and resp["Location"].startswith("/login/?next=/monitor/runs/")
    client.force_login(personas.alice)
    assert client.get(URL).status_code == 403
    assert "Monitoring" not in client.get("/").content.decode()
    client.force_login(grant(personas.alice, VIEW))
    assert client.get(URL).status_code == 200
    home = client.get("/").content.decode()
    assert f'href="{URL}"' in home and ">Monitoring</a>" in home


def bulk_runs(n: int, *, record: Record | None = None, status: str = RunStatus.IN_PROGRESS) -> list[Run]:
    """`n` runs of the active cases version written directly: paging and query counts need many
    rows, not the engine."""
    from orchestration.models import OrchestrationVersion

    version = OrchestrationVersion.objects.get(orchestration__api_name="cases", is_active=True)
    ct = ContentType.objects.get_for_model(Record)
    now = timezone.now()
    return Run.objects.bulk_create(
        Run(
            orchestration_id=version.orchestration_id,
            version=version,
            record_type=ct if record else None,
            record_id=record.pk if record else None,
            record_label=record.name if record else "",
            status=status,
            current_stage="review",
            started_at=now,
        )
        for _ in range(n)
    )


@pytest.mark.django_db
def test_keyset_pages_go_older_and_back_newer(client, personas, viewer):
    define()
    ids = sorted((r.pk for r in bulk_runs(120)), reverse=True)
    client.force_login(viewer)
    first = client.get(URL).content.decode()
    assert shown(first) == ids[:50]
    assert "← Newer</span>" in first  # no newer page: disabled
    older = re.search(r'href="\?before=(\d+)" rel="next">Older', first)
    assert older and int(older.group(1)) == ids[49]

    second = client.get(f"{URL}?before={ids[49]}").content.decode()
    assert shown(second) == ids[50:100]
    third = client.get(f"{URL}?before={ids[99]}").content.decode()
    assert shown(third) == ids[100:]
    assert "Older →</span>" in third  # the oldest page

    newer = re.search(r'href="\?after=(\d+)" rel="prev">', third)
    assert newer and int(newer.group(1)) == ids[100]
    assert shown(client.get(f"{URL}?after={ids[100]}").content.decode()) == ids[50:100]
    # Newer than the second page is the first page, full.
    assert shown(client.get(f"{URL}?after={ids[50]}").content.decode()) == ids[:50]


@pytest.mark.django_db
def test_pages_keep_the_filter(client, personas, viewer):
    define()
    bulk_runs(60, status=RunStatus.ERROR)
    bulk_runs(60)
    client.force_login(viewer)
    html = client.get(f"{URL}?status=error").content.decode()
    assert len(shown(html)) == 50
    older = re.search(r'href="\?status=error&amp;before=(\d+)" rel="next"', html)
    assert older
    html = client.get(f"{URL}?status=error&before={older.group(1)}").content.decode()
    assert len(shown(html)) == 10
    assert set(Run.objects.filter(pk__in=shown(html)).values_list("status", flat=True)) == {"error"}


@pytest.mark.django_db
def test_htmx_requests_get_only_the_table(client, personas, viewer):
    define()
    bulk_runs(3)
    client.force_login(viewer)
    full = client.get(f"{URL}?status=in_progress")
    assert 'hx-trigger="every 5s" data-poll-visible' in full.content.decode()
    resp = client.get(f"{URL}?status=in_progress", headers={"HX-Request": "true"})
    html = resp.content.decode()
    assert resp.status_code == 200
    assert html.lstrip().startswith('<div id="runs-table"')
    assert 'hx-get="/monitor/runs/?status=in_progress"' in html
    assert "<html" not in html and "Apply filters" not in html
    assert len(shown(html)) == 3
    assert "HX-Request" in full["Vary"] and "HX-Request" in resp["Vary"]


@pytest.mark.django_db(transaction=True)
def test_a_script_in_a_record_name_is_shown_as_text(client, personas, viewer):
    define()
    launch("cases", make_case("<script>alert(1)</script> Acme"))
    client.force_login(viewer)
    for url in (URL, f"{URL}?q=<script>", "/monitor/runs/bulk/?action=cancel&q=<script>"):
        html = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Acme" in html, url


@pytest.mark.django_db(transaction=True)
def test_query_count_does_not_grow_with_the_runs_on_the_page(client, personas, django_assert_num_queries):
    define()
    admin = UserFactory(username="watcher")
    grant(admin, VIEW)
    launch("cases", make_case("First"), actor=personas.admin)
    client.force_login(admin)
    client.get(URL)  # warm the per-process caches (content types, parsed definitions)
    # session, user, permissions (user's, groups'), the page of runs, counts, the records of the
    # page, the versions' stage labels, filter choices (orchestrations, record types and their
    # labels), badge.
    with django_assert_num_queries(12) as ctx:
        assert len(shown(client.get(URL).content.decode())) == 1
    expected = len(ctx.captured_queries)

    for i in range(59):
        bulk_runs(1, record=make_case(f"Case {i}"))
    with django_assert_num_queries(expected):
        html = client.get(URL).content.decode()
    assert len(shown(html)) == 50
    assert html.count('href="/records/case/') == 50


@pytest.mark.django_db
def test_counts_stop_at_the_cap_and_say_so(client, personas, viewer):
    define()
    bulk_runs(4)
    bulk_runs(2, status=RunStatus.ERROR)
    client.force_login(viewer)
    with mock.patch("orchestration.selectors.runs.COUNT_CAP", 3):
        html = client.get(URL).content.decode()
    assert counts_text(html)["in_progress"] == "3+"
    assert counts_text(html)["error"] == "2"
    assert 'All <span class="run-count">5+</span>' in html


def counts_text(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-status="(\w+)".*?class="run-count">([\d+]+)<', html, flags=re.S))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "f",
    [
        RunFilter(),
        RunFilter(status="error"),
        RunFilter(orchestration="cases"),
        RunFilter(orchestration="cases", status="error"),
        RunFilter(orchestration="cases", version=1),
        RunFilter(stage="review"),
        RunFilter(record_type="case", status="in_progress"),
    ],
    ids=repr,
)
def test_the_page_query_reads_runs_in_order_from_an_index(personas, f):
    """With a million runs a sequential scan or a sort of every matching run is what makes the
    page slow. The planner picks scans by table size, so on this tiny table it is told to avoid
    sequential scans: what remains must be an index that yields the runs in page order."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's")
    define()
    bulk_runs(3)
    page = selectors.runs_for_display(selectors.runs_filtered(f)).order_by("-id")[:51]
    sql, params = page.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on orchestration_run" not in plan, plan
    assert "Sort" not in plan, plan  # read in id order from an index, not sorted afterwards


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("table", "index", "query"),
    [
        ("orchestration_run", "run_label_trgm", lambda: selectors.runs_filtered(RunFilter(q="ase 12"))),
        ("records_record", "record_name_trgm", lambda: Record.objects.filter(name__icontains="ase 12")),
    ],
    ids=["runs", "records"],
)
def test_name_search_can_use_the_trigram_index(personas, table, index, query):
    """`icontains` is `UPPER(col) LIKE '%TERM%'`: only the trigram index of the migrations
    (config/db.py) answers it without reading every row. Told to avoid scans that read every
    row (sequential, or a whole index in order), the planner must find that index."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("trigram indexes are PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_statistic_ext WHERE stxname = %s", [f"{index}_stats"])
        assert cursor.fetchone(), "the expression statistics the planner estimates matches with"
    sql, params = query().order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Bitmap Index Scan on {index}" in plan, plan
    assert table in plan


@pytest.mark.django_db
def test_a_date_range_reads_the_same_runs_whichever_way_it_is_planned(personas):
    """With few runs in the date range the page picks them by date and sorts them
    (`few_in_date_range`): the pages and counts must be exactly those of the id-index way."""
    define()
    runs = bulk_runs(7) + bulk_runs(3, status=RunStatus.ERROR) + bulk_runs(2, status=RunStatus.COMPLETED)
    # Spread over three days; today's are outside the range.
    today = timezone.localdate()
    for i, run in enumerate(runs):
        Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - dt.timedelta(days=i % 3))
    f = RunFilter(started_from=today - dt.timedelta(days=2), started_to=today - dt.timedelta(days=1))
    assert selectors.few_in_date_range(f)
    assert not selectors.few_in_date_range(RunFilter(status="error"))  # no dates: never
    expected = sorted((r.pk for i, r in enumerate(runs) if i % 3), reverse=True)
    for few in (False, True):
        pages, before = [], None
        while True:
            page = selectors.run_page(f, before=before, size=3, few_in_range=few)
            pages.append([r.pk for r in page.runs])
            if page.older is None:
                break
            before = page.older
        assert [pk for p in pages for pk in p] == expected, few
        back = selectors.run_page(f, after=expected[3], size=3, few_in_range=few)
        assert [r.pk for r in back.runs] == expected[:3]
    assert selectors.run_status_counts(f, few_in_range=True) == selectors.run_status_counts(f)
    assert selectors.run_status_counts(f)[RunStatus.ERROR] == 2


@pytest.mark.django_db
def test_a_date_range_holding_many_runs_is_read_by_the_id_index(personas, monkeypatch):
    define()
    bulk_runs(4)
    today = timezone.localdate()
    f = RunFilter(started_from=today, started_to=today)
    assert selectors.few_in_date_range(f)
    monkeypatch.setattr(selectors.runs, "DATE_RANGE_SORT_CAP", 3)
    assert not selectors.few_in_date_range(f)


@pytest.mark.django_db
def test_the_runs_page_with_a_date_range_costs_one_query_more(client, personas, viewer):
    define()
    bulk_runs(3)
    client.force_login(viewer)
    today = timezone.localdate().isoformat()
    client.get(URL)  # warm the per-process caches
    with CaptureQueriesContext(connection) as plain:
        client.get(URL)
    with CaptureQueriesContext(connection) as dated:
        response = client.get(f"{URL}?started_from={today}&started_to={today}")
    assert len(shown(response.content.decode())) == 3
    assert len(dated.captured_queries) == len(plain.captured_queries) + 1


def test_the_record_type_filter_names_types_by_their_labels(client, personas):
    """It listed api names (`loan_application`) where the record types have labels."""
    define()
    grant(personas.alice, VIEW)
    client.force_login(personas.alice)
    html = client.get(URL).content.decode()
    select = html[
        html.index('id="f-record-type"') : html.index("</select>", html.index('id="f-record-type"'))
    ]
    assert '<option value="case">Case</option>' in select
    assert '<option value="ticket">Ticket</option>' in select
