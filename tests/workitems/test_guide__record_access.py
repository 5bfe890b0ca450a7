"""An assignee reaches the record from the email link even without the general
records.view_record permission; someone with no work there does not."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory, load, make_case, orchestration, screen_flow

pytestmark = pytest.mark.django_db(transaction=True)


def test_assignee_without_record_permission_sees_the_record_and_item(personas, client):
    from orchestration.services import run_launch
    from workitems.models import WorkItem

    load(
        screen_flow("review"),
        orchestration(
            "p",
            stages=[
                {
                    "key": "s",
                    "steps": [
                        {
                            "key": "r",
                            "label": "Review it",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"user": "alice"},
                        }
                    ],
                }
            ],
        ),
    )
    case = make_case("Access case")
    run_launch(orchestration="p", record=case)
    item = WorkItem.objects.get(run__record_id=case.pk)
    assert not personas.alice.has_perm("records.view_record")

    client.force_login(personas.alice)
    resp = client.get(f"{case.get_absolute_url()}?item={item.pk}")
    assert resp.status_code == 200
    assert "Review it" in resp.content.decode()

    stranger = UserFactory(username="stranger")
    client.force_login(stranger)
    assert client.get(case.get_absolute_url()).status_code == 403
