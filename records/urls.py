from django.urls import path

from .views import launch, pages

app_name = "records"
urlpatterns = [
    path("", pages.records_home, name="home"),
    path("<slug:type_name>/", pages.record_list, name="list"),
    path("<slug:type_name>/new/", pages.record_new, name="new"),
    path("<slug:type_name>/<int:pk>/", pages.record_detail, name="detail"),
    path("<slug:type_name>/<int:pk>/edit/", pages.record_edit, name="edit"),
    path("<slug:type_name>/<int:pk>/launch/", launch.record_launch, name="launch"),
    path("<slug:type_name>/<int:pk>/panels/<slug:panel>/", pages.record_panel, name="panel"),
]
