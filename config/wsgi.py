import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Web pages plan each statement for its parameters (see config/db.py).
from config.db import prefer_custom_plans  # noqa: E402

prefer_custom_plans()
