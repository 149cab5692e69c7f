"""Single-file Django project: one view rendering a template (S4).

DEBUG off, no database, no sessions; the default middleware that needs neither
(SecurityMiddleware, CommonMiddleware) stays on, as in a small real project.
"""
import os

import django
from django.conf import settings

HERE = os.path.dirname(os.path.abspath(__file__))

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
        ],
        INSTALLED_APPS=[],
        TEMPLATES=[{
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [os.path.join(HERE, "templates")],
        }],
        USE_TZ=True,
    )
    django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.urls import path  # noqa: E402

ITEMS = [{"name": f"item {i}", "price": i * 3 + 0.5} for i in range(10)]


def index(request):
    return render(request, "index.html", {"title": "Hello, World!", "items": ITEMS})


urlpatterns = [path("", index)]

app = get_wsgi_application()
