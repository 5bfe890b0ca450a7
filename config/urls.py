from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from orchestration.views.metrics import metrics_view

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("records/", include("records.urls")),
    path("api/", include("orchestration.api_urls")),
    path("monitor/", include("orchestration.monitor_urls")),
    path("", include("workitems.urls")),
]
