from django.urls import path, re_path

from . import api

app_name = "api"
urlpatterns = [
    path("orchestrations", api.orchestration_list, name="orchestrations"),
    path("orchestrations/<str:api_name>/runs", api.run_create, name="launch"),
    path("runs", api.run_list, name="runs"),
    path("runs/<int:run_id>", api.run_get, name="run"),
    path("openapi.json", api.openapi, name="openapi"),
    # Anything else under /api/ answers JSON too, not the HTML 404 page.
    re_path(r"^.*$", api.not_found),
]
