import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402

# Sessions, CSRF tokens and password-reset links are signed with SECRET_KEY: a web process on the
# development key (public, in the source) would let anyone forge them. Only DEBUG may use it.
if not settings.DEBUG and settings.SECRET_KEY == settings.DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set: production (DEBUG is off) needs SECRET_KEY, or SECRET_KEY_FILE naming "
        "a file that holds it (50+ random characters, e.g. from "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`). Set DEBUG=true for development."
    )

# Web pages plan each statement for its parameters (see config/db.py).
from config.db import prefer_custom_plans  # noqa: E402

prefer_custom_plans()
