"""The work item endpoints of the JSON API (workitems/api.py), under /api/ before
orchestration's API URLs, whose last pattern answers every other /api/ path with a JSON 404."""

from django.urls import path

from . import api

app_name = "workitems_api"
urlpatterns = [
    path("work-items", api.work_item_list, name="work_items"),
    path("work-items/<int:item_id>", api.work_item_get, name="work_item"),
    path("work-items/<int:item_id>/complete", api.work_item_complete, name="complete"),
    path("work-items/<int:item_id>/claim", api.work_item_claim, name="claim"),
    path("work-items/<int:item_id>/release", api.work_item_release, name="release"),
    path("work-items/<int:item_id>/reassign", api.work_item_reassign, name="reassign"),
]
