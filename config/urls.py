from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView

from demo.services import demo_logins
from orchestration.views import tokens
from orchestration.views.metrics import metrics_view
from records.views import pages as records_pages

from . import views

urlpatterns = [
    # The records home (counts per type, recent records): where the navigation's "Records" goes.
    path("", records_pages.records_home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    # Browsers ask every site for /favicon.ico (the admin's pages too): answer, rather than 404.
    path("favicon.ico", require_safe(RedirectView.as_view(url=static("favicon.svg"), permanent=True))),
    # A development server with the demo loaded lists its logins (demo.services.demo_logins).
    path("login/", auth_views.LoginView.as_view(extra_context={"demo_logins": demo_logins}), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("account/tokens/", tokens.token_list, name="account_tokens"),
    path("account/tokens/<int:pk>/revoke/", tokens.token_revoke, name="account_token_revoke"),
    path("admin/", admin.site.urls),
    path("records/", include("records.urls")),
    # Before orchestration's API, whose last pattern answers any other /api/ path with a JSON 404.
    path("api/", include("workitems.api_urls")),
    path("api/", include("orchestration.api_urls")),
    path("monitor/", include("orchestration.monitor_urls")),
    path("builder/", include("orchestration.builder.urls")),
    path("", include("workitems.urls")),
]

# A database outage that escapes the middleware answers 503, not 500 (config/middleware.py).
handler500 = "config.views.server_error"
