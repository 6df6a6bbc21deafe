"""Settings of the example shop.

Everything that differs between machines comes from the environment; the defaults suit a local try-out next to
`deno task start` on the same machine (see README.md). `manage.py test` always runs with DEBUG off and an
in-memory test database.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def env_list(name, default):
    """A comma-separated environment variable as a list, without empty items."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Only for trying the example out. A real deployment sets its own.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-shop-not-a-secret-do-not-deploy")
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
# "testserver" is the host of Django's test client.
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "django_shop.urls"
WSGI_APPLICATION = "django_shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

# A local file by default; SHOP_DB points it elsewhere (for example into a temp dir).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Switchboard. The secret is the same value as the server's --jwt-secret (at least 32 bytes), the key one of
# its --api-key values. SWITCHBOARD_URL is the address browsers use; the shop's server publishes to it too.
SWITCHBOARD_URL = os.environ.get("SWITCHBOARD_URL", "http://localhost:8000").rstrip("/")
SWITCHBOARD_JWT_SECRET = os.environ.get("SWITCHBOARD_JWT_SECRET", "")
SWITCHBOARD_API_KEY = os.environ.get("SWITCHBOARD_API_KEY", "")
# Seconds a minted token lives. Pages fetch a fresh one from /token/ before it runs out.
SWITCHBOARD_TOKEN_TTL = int(os.environ.get("SWITCHBOARD_TOKEN_TTL", "600"))
# Seconds the shop waits for the publish API before it gives up on a notification.
SWITCHBOARD_TIMEOUT = float(os.environ.get("SWITCHBOARD_TIMEOUT", "5"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"shop": {"handlers": ["console"], "level": "INFO"}},
}
