from django.urls import path

from .views import pages

app_name = "records"
urlpatterns = [
    path("<slug:type_name>/", pages.record_list, name="list"),
    path("<slug:type_name>/<int:pk>/", pages.record_detail, name="detail"),
]
