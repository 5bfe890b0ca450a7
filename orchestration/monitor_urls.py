"""Monitoring pages for admins (issue: monitoring dashboard). Each area has its own module."""

from django.urls import path

from .views import analytics, compare, definitions, migrate, run_detail, runs

app_name = "monitor"
urlpatterns = [
    path("runs/", runs.run_list, name="runs"),
    path("runs/bulk/", runs.run_bulk, name="runs_bulk"),
    path("runs/<int:pk>/", run_detail.run_detail, name="run"),
    path("runs/<int:pk>/action/<str:action>/", run_detail.run_action, name="run_action"),
    path("runs/<int:pk>/variables/<slug:name>/", run_detail.run_variable, name="run_variable"),
    path("steps/<int:pk>/<str:action>/", run_detail.step_action, name="step_action"),
    path("orchestrations/", definitions.orchestration_list, name="orchestrations"),
    path("orchestrations/upload/", definitions.definitions_upload, name="upload"),
    path("orchestrations/<slug:api_name>/", definitions.orchestration_detail, name="orchestration"),
    path("orchestrations/<slug:api_name>/compare/", compare.version_compare, name="version_compare"),
    path("orchestrations/<slug:api_name>/v<int:number>/", definitions.version_detail, name="version"),
    path("orchestrations/<slug:api_name>/v<int:number>/yaml/", definitions.version_yaml, name="version_yaml"),
    path(
        "orchestrations/<slug:api_name>/v<int:number>/activate/",
        definitions.version_activate_view,
        name="version_activate",
    ),
    path(
        "orchestrations/<slug:api_name>/v<int:number>/migrate/",
        migrate.version_migrate,
        name="version_migrate",
    ),
    path("analytics/", analytics.analytics_all, name="analytics"),
    path("analytics/<slug:api_name>/", analytics.analytics_orchestration, name="analytics_orchestration"),
]
