from django.urls import path

from .views import away, guide, manage, mywork, outbox, picker, schedule

app_name = "workitems"
urlpatterns: list = [
    path("my-work/", mywork.my_work, name="my_work"),
    path("my-work/badge/", mywork.my_work_badge, name="my_work_badge"),
    path("my-work/<int:pk>/claim/", mywork.my_work_claim, name="my_work_claim"),
    path("my-work/<int:pk>/release/", mywork.my_work_release, name="my_work_release"),
    path("my-work/views/", mywork.my_work_view_save, name="my_work_view_save"),
    path("my-work/views/<int:pk>/", mywork.my_work_view_open, name="my_work_view_open"),
    path("my-work/views/<int:pk>/delete/", mywork.my_work_view_delete, name="my_work_view_delete"),
    path("people/pick/", picker.pick, name="pick"),
    path("account/out-of-office/", away.out_of_office, name="out_of_office"),
    path("work-items/", manage.manage, name="manage"),
    path("work-items/reassign/", manage.reassign, name="reassign"),
    path("work-items/<int:pk>/schedule/", schedule.schedule, name="schedule"),
    path("work-items/<int:pk>/", guide.guide_item, name="guide_item"),
    path("work-items/<int:pk>/screen", guide.guide_screen, name="guide_screen"),
    path("work-items/<int:pk>/claim", guide.guide_claim, name="guide_claim"),
    path("work-items/<int:pk>/release", guide.guide_release, name="guide_release"),
    path("work-items/<int:pk>/comments", guide.guide_comments, name="guide_comments"),
    path("dev/outbox/", outbox.outbox_list, name="outbox"),
    path("dev/outbox/<str:name>/<int:index>/", outbox.outbox_message_view, name="outbox_message"),
]
