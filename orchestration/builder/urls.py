"""/builder/: building orchestrations in the browser (views.py; the test run's pages are
sandbox_urls.py's)."""

from __future__ import annotations

from django.urls import path

from . import activate_views, sandbox_urls, views

app_name = "builder"

urlpatterns = [
    path("", views.draft_list, name="list"),
    path("new/", views.draft_create, name="create"),
    path("<int:pk>/", views.draft_page, name="draft"),
    path("<int:pk>/edit/", views.draft_edit_view, name="edit"),
    path("<int:pk>/yaml/", views.draft_yaml_view, name="yaml"),
    path("<int:pk>/download/", views.draft_download, name="download"),
    path("<int:pk>/activate/", views.draft_activate_view, name="activate"),
    path("<int:pk>/activate/confirm/", activate_views.draft_activate_confirm, name="activate_confirm"),
    path("<int:pk>/undo/", views.draft_history, {"action": "undo"}, name="undo"),
    path("<int:pk>/redo/", views.draft_history, {"action": "redo"}, name="redo"),
    *sandbox_urls.urlpatterns,
]
