from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from orchestration.views import tokens

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("account/tokens/", tokens.token_list, name="account_tokens"),
    path("account/tokens/<int:pk>/revoke/", tokens.token_revoke, name="account_token_revoke"),
    path("admin/", admin.site.urls),
    path("records/", include("records.urls")),
    path("api/", include("orchestration.api_urls")),
    path("monitor/", include("orchestration.monitor_urls")),
    path("", include("workitems.urls")),
]
