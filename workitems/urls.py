from django.urls import path

from .views import mywork, outbox

app_name = "workitems"
urlpatterns: list = [
    path("my-work/", mywork.my_work, name="my_work"),
    path("dev/outbox/", outbox.outbox_list, name="outbox"),
    path("dev/outbox/<str:name>/<int:index>/", outbox.outbox_message, name="outbox_message"),
]
