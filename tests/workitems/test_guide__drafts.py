"""Drafts and screen defaults, the services behind the Work Guide: what a person typed is kept
per item and person, merged as they move between screens, and only they may keep it."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from tests.factories import UserFactory
from workitems.models import WorkItem, WorkItemDraft, WorkItemStatus
from workitems.services import (
    workitem_draft_discard,
    workitem_draft_save,
    workitem_drafts_cleanup,
    workitem_screen_defaults,
)
from workitems.tasks import cleanup_drafts

from .guide_support import define, item_of, start

pytestmark = pytest.mark.django_db


def test_a_draft_merges_what_each_screen_sends_and_remembers_the_screen(personas):
    define()
    _, run = start()
    item = item_of(run)
    workitem_draft_save(item=item, user=personas.alice, screen=1, values={"amount": "4", "kind": "repair"})
    draft = workitem_draft_save(
        item=item, user=personas.alice, screen=0, values={"reason": "r", "kind": "replace"}
    )
    assert draft.screen == 0
    assert draft.values == {"amount": "4", "kind": "replace", "reason": "r"}
    assert WorkItemDraft.objects.count() == 1


def test_drafts_are_per_person_on_a_shared_item(personas):
    define(assignee={"group": "engineering"})
    _, run = start()
    item = item_of(run)
    erin = UserFactory(username="erin")
    erin.groups.add(personas.engineering)
    workitem_draft_save(item=item, user=personas.alice, screen=0, values={"amount": "1"})
    workitem_draft_save(item=item, user=erin, screen=1, values={"amount": "2"})
    assert {d.user.username: (d.screen, d.values["amount"]) for d in WorkItemDraft.objects.all()} == {
        "alice": (0, "1"),
        "erin": (1, "2"),
    }
    workitem_draft_discard(item=item, user=erin)
    assert list(WorkItemDraft.objects.values_list("user__username", flat=True)) == ["alice"]


def test_only_people_who_may_act_keep_a_draft_and_only_on_real_screens(personas):
    define()
    _, run = start()
    item = item_of(run)
    with pytest.raises(PermissionDenied):
        workitem_draft_save(item=item, user=personas.bob, screen=0, values={"amount": "1"})
    with pytest.raises(ValidationError):
        workitem_draft_save(item=item, user=personas.alice, screen=2, values={})
    assert not WorkItemDraft.objects.exists()


def test_defaults_are_evaluated_for_unanswered_fields_and_bad_ones_are_left_out(personas):
    define(
        screens=[
            {
                "key": "s",
                "fields": [
                    {"name": "a", "default": "record.name | upper"},
                    {"name": "b", "type": "number", "default": "'not a number'"},
                    {"name": "c", "type": "date", "default": "today()"},
                    {"name": "d", "default": "'skipped'"},
                    {"name": "e", "type": "multi_choice", "choices": ["x", "y"], "default": "['y']"},
                ],
            }
        ]
    )
    _, run = start("Leak")
    item = item_of(run)
    values = workitem_screen_defaults(item=item, screen=0, skip={"d"})
    assert values.pop("c")  # today's date, as the ISO string a date field stores
    assert values == {"a": "LEAK", "e": ["y"]}


def test_drafts_of_items_that_closed_are_cleaned_up_and_open_ones_kept(personas):
    define(assignee={"group": "engineering"})
    erin = UserFactory(username="erin")
    erin.groups.add(personas.engineering)
    items = [item_of(start()[1]) for _ in range(3)]
    for item in items:
        workitem_draft_save(item=item, user=personas.alice, screen=0, values={"amount": "1"})
        workitem_draft_save(item=item, user=erin, screen=0, values={"amount": "2"})
    # One completed (by someone else: erin's draft stays behind), one canceled, one still open.
    WorkItem.objects.filter(pk=items[0].pk).update(status=WorkItemStatus.COMPLETED)
    WorkItem.objects.filter(pk=items[1].pk).update(status=WorkItemStatus.CANCELED)
    assert workitem_drafts_cleanup(batch=3) == 3  # in batches
    assert cleanup_drafts() == 1  # the task, as Celery beat runs it
    assert workitem_drafts_cleanup() == 0
    assert set(WorkItemDraft.objects.values_list("item_id", flat=True)) == {items[2].pk}
    assert WorkItemDraft.objects.count() == 2


def test_the_cleanup_is_scheduled():
    from django.conf import settings

    entries = {e["task"]: e for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert entries["workitems.tasks.cleanup_drafts"]["schedule"] == 3600.0
