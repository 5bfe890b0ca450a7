"""Working an item in the Work Guide: Next validates the screen shown, Back keeps values
without checking them, values are kept per person and item (a reload or a second tab resumes),
Finish completes the step through the service and the panel shows what came next. Both with
htmx (partials) and without JavaScript (post, redirect, get)."""

from __future__ import annotations

import re

import pytest

from orchestration.models import RunStatus
from tests.factories import RECORD_PERMS, grant
from workitems.models import WorkItem, WorkItemDraft, WorkItemStatus

from .guide_support import (
    define,
    field_error,
    input_tag,
    item_of,
    page_url,
    panel,
    post_screen,
    start,
    text,
    then_approve,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, personas):  # type: ignore[no-untyped-def]
    grant(personas.alice, *RECORD_PERMS)
    client.force_login(personas.alice)
    return client


def test_next_checks_only_the_screen_shown_and_ties_each_error_to_its_field(alice_client):
    define()
    _, run = start()
    item = item_of(run)
    response = post_screen(alice_client, item, 0, "next", amount="0", kind="")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<li id="work-item-{item.pk}"')  # just the item, swapped in place
    assert field_error(html, item, "amount") == "Must be at least 1."
    assert field_error(html, item, "kind") == "This field is required."
    amount = input_tag(html, item, "amount")
    assert 'aria-invalid="true"' in amount
    assert f'aria-describedby="wi{item.pk}_f-amount_helptext wi{item.pk}_f-amount_error"' in amount
    assert f'id="wi{item.pk}_f-amount_error"' in html
    # Focus goes to the first field in error; what was typed is still there.
    assert "autofocus" in amount
    assert 'value="0"' in amount
    assert "autofocus" not in input_tag(html, item, "kind", "select")
    # The second screen's required reason was not asked for yet.
    assert "Reason" not in html
    assert "Screen 1 of 2" in text(html)


def test_a_corrected_screen_moves_on_and_focus_goes_to_the_new_screens_first_field(alice_client):
    define()
    _, run = start()
    item = item_of(run)
    post_screen(alice_client, item, 0, "next", amount="0", kind="repair")
    html = post_screen(alice_client, item, 0, "next", amount="120.50", kind="repair").content.decode()
    assert "Screen 2 of 2" in text(html)
    assert "autofocus" in input_tag(html, item, "approved")
    assert ">Finish<" in html and ">Back<" in html
    draft = WorkItemDraft.objects.get(item=item)
    assert draft.screen == 1
    assert draft.values == {"amount": "120.50", "kind": "repair"}


def test_back_keeps_values_without_checking_them(alice_client):
    define()
    _, run = start()
    item = item_of(run)
    post_screen(alice_client, item, 0, "next", amount="12", kind="replace")
    # Half-typed second screen: a reason that is too long is not refused on the way back.
    html = post_screen(alice_client, item, 1, "back", approved="on", reason="x" * 50).content.decode()
    assert "Screen 1 of 2" in text(html)
    assert 'value="12"' in input_tag(html, item, "amount")
    assert 'value="replace" selected' in html
    assert "invalid-feedback" not in html
    html = post_screen(alice_client, item, 0, "next", amount="12", kind="replace").content.decode()
    assert "checked" in input_tag(html, item, "approved")
    assert f'value="{"x" * 50}"' in input_tag(html, item, "reason")


def test_a_reload_or_a_second_tab_resumes_at_the_same_screen_with_the_same_values(alice_client):
    define()
    case, run = start()
    item = item_of(run)
    post_screen(alice_client, item, 0, "next", amount="99", kind="repair")
    post_screen(alice_client, item, 1, "save", reason="Half a thought")
    for _ in range(2):  # a reload, then another tab
        html = panel(alice_client.get(page_url(case, item=item.pk)).content.decode())
        assert "Screen 2 of 2" in text(html)
        assert 'value="Half a thought"' in input_tag(html, item, "reason")
    fragment = alice_client.get(f"/work-items/{item.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'value="Half a thought"' in input_tag(fragment, item, "reason")


def test_finish_completes_the_step_and_the_panel_shows_the_next_item_the_viewer_got(alice_client, personas):
    define(then=[then_approve("alice")])
    case, run = start()
    item = item_of(run)
    post_screen(alice_client, item, 0, "next", amount="120.50", kind="repair")
    response = post_screen(alice_client, item, 1, "finish", approved="on", reason="Photos match")
    html = response.content.decode()
    assert response.status_code == 200
    # The whole panel comes back, in place of the panel, with the result and the new item.
    assert response["HX-Retarget"] == "#panel-work_guide"
    assert response["HX-Reswap"] == "innerHTML"
    assert response["HX-Replace-Url"] == f"/records/case/{case.pk}/"
    assert "Done: “Check the claim” is completed." in text(html)
    assert "Approve the payout" in html
    assert 'id="panel-runs"' in html and 'hx-swap-oob="true"' in html  # the runs panel, refreshed
    item.refresh_from_db()
    assert item.status == WorkItemStatus.COMPLETED
    assert item.completed_by == personas.alice
    assert item.outputs == {"amount": "120.50", "kind": "repair", "approved": True, "reason": "Photos match"}
    assert not WorkItemDraft.objects.filter(item=item).exists()


def test_finishing_the_last_step_of_a_stage_moves_the_run_to_the_next_stage(alice_client):
    define()
    _, run = start()
    item = item_of(run)
    post_screen(alice_client, item, 0, "next", amount="5", kind="repair")
    html = post_screen(alice_client, item, 1, "finish", reason="ok").content.decode()
    run.refresh_from_db()
    assert run.current_stage == "payout"
    assert run.status == RunStatus.IN_PROGRESS
    runs_panel = html[html.index('id="panel-runs"') :]
    assert "Stage: Payout" in text(runs_panel)
    assert "Nothing for you to do on this record." in text(html)


def test_finish_checks_every_screen_again_and_shows_the_first_screen_in_error(alice_client):
    define()
    _, run = start()
    item = item_of(run)
    post_screen(alice_client, item, 0, "next", amount="5", kind="repair")
    # Something went wrong with the first screen's values since (another tab, a stale draft).
    WorkItemDraft.objects.filter(item=item).update(values={"amount": "-3", "kind": "repair"})
    html = post_screen(alice_client, item, 1, "finish", reason="ok").content.decode()
    assert "Screen 1 of 2" in text(html)
    assert field_error(html, item, "amount") == "Must be at least 1."
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.ASSIGNED
    # The last screen's answer is kept for when they come back to it.
    assert WorkItemDraft.objects.get(item=item).values["reason"] == "ok"


def test_every_field_type_is_drawn_checked_and_stored(alice_client, personas):
    fields = [
        {"name": "t", "type": "text", "label": "Text"},
        {"name": "lt", "type": "long_text", "label": "Long text"},
        {"name": "n", "type": "number", "label": "Number", "max_value": 10},
        {"name": "d", "type": "decimal", "label": "Decimal"},
        {"name": "day", "type": "date", "label": "Day"},
        {"name": "at", "type": "datetime", "label": "At"},
        {"name": "b", "type": "boolean", "label": "Bool"},
        {"name": "c", "type": "choice", "label": "Choice", "choices": ["x", "y"]},
        {"name": "mc", "type": "multi_choice", "label": "Multi", "choices": ["p", "q", "r"]},
        {"name": "e", "type": "email", "label": "Email"},
        {"name": "u", "type": "user", "label": "Person"},
    ]
    define(screens=[{"key": "all", "fields": fields}])
    _, run = start()
    item = item_of(run)
    html = alice_client.get(f"/work-items/{item.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'type="text"' in input_tag(html, item, "t")
    assert "<textarea" in html
    assert 'type="number"' in input_tag(html, item, "n")
    assert 'inputmode="decimal"' in input_tag(html, item, "d")
    assert 'type="date"' in input_tag(html, item, "day")
    assert 'type="datetime-local"' in input_tag(html, item, "at")
    assert 'type="checkbox"' in input_tag(html, item, "b")
    assert "<select" in input_tag(html, item, "c", "select")
    assert html.count('name="f-mc"') == 3 and 'type="checkbox"' in html
    assert 'type="email"' in input_tag(html, item, "e")
    assert ">bob</option>" in html

    bad = {"n": "11", "d": "abc", "day": "31/12/2027", "at": "soon", "e": "not-an-address", "u": "999999"}
    html = post_screen(alice_client, item, 0, "finish", **bad).content.decode()
    assert field_error(html, item, "n") == "Must be at most 10."
    assert field_error(html, item, "d") == "Enter a number."
    assert field_error(html, item, "day") == "Expected a date (YYYY-MM-DD)."
    assert field_error(html, item, "at") == "Expected a date and time (ISO 8601)."
    assert field_error(html, item, "e") == "Enter a valid email address."
    assert field_error(html, item, "u") == "Choose one of the listed people."

    good = {
        "t": "  trimmed  ",
        "lt": "line one\nline two",
        "n": "7",
        "d": "12.50",
        "day": "2027-01-04",
        "at": "2027-01-04T09:30",
        "b": "on",
        "c": "y",
        "mc": ["p", "r"],
        "e": "dora@example.com",
        "u": str(personas.bob.pk),
    }
    post_screen(alice_client, item, 0, "finish", **good)
    item.refresh_from_db()
    assert item.status == WorkItemStatus.COMPLETED
    assert item.outputs == {
        "t": "trimmed",
        "lt": "line one\nline two",
        "n": 7,
        "d": "12.50",
        "day": "2027-01-04",
        "at": "2027-01-04T09:30:00+00:00",
        "b": True,
        "c": "y",
        "mc": ["p", "r"],
        "e": "dora@example.com",
        "u": personas.bob.pk,
    }


def test_a_required_choice_without_a_default_shows_nothing_picked_and_must_be_picked(alice_client):
    """It once showed its first choice as if chosen (a browser picks a select's first option),
    and Finish sent it: a new employee got "MacBook Pro 14" nobody chose."""
    fields = [
        {"name": "laptop", "type": "choice", "label": "Laptop", "required": True, "choices": ["Mac", "PC"]}
    ]
    define(screens=[{"key": "all", "fields": fields}])
    _, run = start()
    item = item_of(run)
    html = alice_client.get(f"/work-items/{item.pk}/", HTTP_HX_REQUEST="true").content.decode()
    select = input_tag(html, item, "laptop", "select")
    assert '<option value="" selected>Choose…</option>' in html[html.index(select) :]
    html = post_screen(alice_client, item, 0, "finish", laptop="").content.decode()
    assert field_error(html, item, "laptop")
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.ASSIGNED
    post_screen(alice_client, item, 0, "finish", laptop="PC")
    item.refresh_from_db()
    assert (item.status, item.outputs) == (WorkItemStatus.COMPLETED, {"laptop": "PC"})


def test_defaults_come_from_expressions_over_inputs_record_vars_and_steps(alice_client):
    screens = [
        {
            "key": "prefilled",
            "fields": [
                {"name": "from_input", "label": "From input", "default": "inputs.hint"},
                {
                    "name": "from_record",
                    "label": "From record",
                    "default": "record.name ~ ' / ' ~ record.severity",
                },
                {"name": "from_vars", "type": "number", "label": "From vars", "default": "vars.limit * 2"},
                {"name": "flag", "type": "boolean", "label": "Flag", "default": "true"},
                {"name": "broken", "label": "Broken", "default": "1 / 0"},
            ],
        },
        {"key": "later", "fields": [{"name": "late", "label": "Late", "default": "run.stage"}]},
    ]
    define(
        screens=screens,
        inputs=[{"name": "hint", "type": "text"}],
        step_inputs={"hint": "'check the photos'"},
        variables=[{"name": "limit", "type": "number", "default": "21"}],
    )
    case, run = start("Burst pipe", severity="High")
    item = item_of(run)
    html = panel(alice_client.get(page_url(case, item=item.pk)).content.decode())
    assert 'value="check the photos"' in input_tag(html, item, "from_input")
    assert 'value="Burst pipe / High"' in input_tag(html, item, "from_record")
    assert 'value="42"' in input_tag(html, item, "from_vars")
    assert "checked" in input_tag(html, item, "flag")
    assert "value=" not in input_tag(html, item, "broken")  # a failing default leaves it empty
    # A default is only a starting point: an answer the person cleared stays cleared.
    html = post_screen(
        alice_client, item, 0, "next", from_input="", from_record="x", from_vars="1"
    ).content.decode()
    assert 'value="review"' in input_tag(html, item, "late")
    html = post_screen(alice_client, item, 1, "back", late="").content.decode()
    assert "value=" not in input_tag(html, item, "from_input")
    assert "checked" not in input_tag(html, item, "flag")


def test_without_javascript_every_step_is_a_post_and_a_redirect_to_the_record_page(alice_client):
    define()
    case, run = start()
    item = item_of(run)
    opened = alice_client.get(f"/work-items/{item.pk}/")
    assert opened.status_code == 302
    assert opened["Location"] == f"/records/case/{case.pk}/?item={item.pk}#work-item-{item.pk}"

    refused = post_screen(alice_client, item, 0, "next", htmx=False, amount="", kind="repair")
    assert refused.status_code == 302
    assert refused["Location"] == f"/records/case/{case.pk}/?item={item.pk}&check=1#work-item-{item.pk}"
    html = panel(alice_client.get(refused["Location"]).content.decode())
    assert field_error(html, item, "amount") == "This field is required."
    assert 'value="repair" selected' in html

    moved = post_screen(alice_client, item, 0, "next", htmx=False, amount="8", kind="repair")
    html = panel(alice_client.get(moved["Location"]).content.decode())
    assert "Screen 2 of 2" in text(html)

    done = post_screen(alice_client, item, 1, "finish", htmx=False, reason="fine")
    assert done["Location"] == f"/records/case/{case.pk}/"
    page = alice_client.get(done["Location"]).content.decode()
    assert "Done: “Check the claim” is completed." in page
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.COMPLETED


def test_save_for_later_keeps_half_typed_input_and_closes_the_item(alice_client):
    define()
    case, run = start()
    item = item_of(run)
    response = post_screen(alice_client, item, 0, "save", amount="-1")
    html = response.content.decode()
    assert "are kept: open it again" in text(html)
    assert 'name="f-amount"' not in html
    assert response["HX-Replace-Url"] == f"/records/case/{case.pk}/"
    html = alice_client.get(f"/work-items/{item.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'value="-1"' in input_tag(html, item, "amount")


def test_responses_vary_on_the_htmx_header(alice_client):
    define()
    _, run = start()
    item = item_of(run)
    for response in (
        alice_client.get(f"/work-items/{item.pk}/", HTTP_HX_REQUEST="true"),
        alice_client.get(f"/work-items/{item.pk}/"),
        post_screen(alice_client, item, 0, "next", amount="3", kind="repair"),
    ):
        assert "HX-Request" in re.split(r",\s*", response["Vary"])


def test_a_post_that_is_not_from_the_form_shows_the_item_as_it_stands(alice_client):
    define()
    _, run = start()
    item = item_of(run)
    for data in ({"screen": "7", "action": "next"}, {"screen": "0", "action": "explode"}, {"action": "next"}):
        response = alice_client.post(f"/work-items/{item.pk}/screen", data, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert "Screen 1 of 2" in text(response.content.decode())
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.ASSIGNED
