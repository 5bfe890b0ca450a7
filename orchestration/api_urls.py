from django.urls import path, re_path

from . import api

app_name = "api"
urlpatterns = [
    path("orchestrations", api.orchestration_list, name="orchestrations"),
    path("orchestrations/<str:api_name>/runs", api.run_create, name="launch"),
    path(
        "orchestrations/<str:api_name>/migrations/preview",
        api.migration_preview_view,
        name="migration_preview",
    ),
    path("orchestrations/<str:api_name>/migrations", api.migration_apply_view, name="migration_apply"),
    path("runs", api.run_list, name="runs"),
    path("runs/<int:run_id>", api.run_get, name="run"),
    path("runs/<int:run_id>/cancel", api.run_cancel_view, name="run_cancel"),
    path("runs/<int:run_id>/steps/<int:step_run_id>/retry", api.step_retry_view, name="step_retry"),
    path("runs/<int:run_id>/steps/<int:step_run_id>/skip", api.step_skip_view, name="step_skip"),
    path("runs/<int:run_id>/steps/<int:step_run_id>/resume", api.step_resume_view, name="step_resume"),
    path("openapi.json", api.openapi, name="openapi"),
    # Anything else under /api/ answers JSON too, not the HTML 404 page. `^` alone (a prefix of
    # every path) rather than `^.*$`, whose `.` stops at a newline: schemathesis sent
    # /api/runs/%0A…/cancel and got Django's HTML 404.
    re_path(r"^", api.not_found),
]
