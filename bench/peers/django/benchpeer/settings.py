"""Minimal Django project for the benchmark: django-eventstream 5 serving
SSE on an ASGI server, fanning out through its Redis backend
(EVENTSTREAM_REDIS), the multi-process setup an origin API would run.

No storage class is configured (no EVENTSTREAM_STORAGE_CLASS): events then
have no ids and no replay, which is the fastest mode django-eventstream has.
"""

import os

SECRET_KEY = "benchmark-only-key-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django_eventstream"]
MIDDLEWARE = []
ROOT_URLCONF = "benchpeer.urls"
DATABASES = {}
USE_TZ = True
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

EVENTSTREAM_REDIS = {
    "host": "127.0.0.1",
    "port": int(os.environ.get("BENCH_VALKEY_PORT", "6379")),
    "db": 0,
}
