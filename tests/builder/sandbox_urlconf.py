"""The site's URLs with the test run's under /builder/ (namespace "builder"), for the tests of the
test run until config/urls.py includes the builder: then this is the site's URLs as they are."""

from __future__ import annotations

from typing import Any

from django.urls import include, path

from config.urls import urlpatterns as site
from orchestration.builder import sandbox_urls

urlpatterns: list[Any] = list(site)
if not any(getattr(p, "namespace", None) == "builder" for p in site):
    urlpatterns.insert(0, path("builder/", include((sandbox_urls.urlpatterns, "builder"))))
