"""The test run of a draft: the builder includes these under /builder/ (namespace "builder")."""

from __future__ import annotations

from django.urls import path

from . import sandbox_views

urlpatterns = [
    path("<int:draft_id>/try/", sandbox_views.sandbox_page, name="sandbox"),
    path("<int:draft_id>/try/act/", sandbox_views.sandbox_act, name="sandbox_act"),
]
