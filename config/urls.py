from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("records/", include("records.urls")),
    path("api/", include("orchestration.api_urls")),
    path("monitor/", include("orchestration.monitor_urls")),
    path("", include("workitems.urls")),
]

# A database outage that escapes the middleware answers 503, not 500 (config/middleware.py).
handler500 = "config.views.server_error"
