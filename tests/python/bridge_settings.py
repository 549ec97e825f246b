"""A Django settings module as an origin app using django-eventstream would
have it, with EVENTSTREAM_REDIS pointing at the test's Valkey: send_event()
then publishes django-eventstream's own message on the Pub/Sub channel
`events_channel`, which edgestream-bridge forwards to the edge."""

import os

SECRET_KEY = "edgestream-bridge-test-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_eventstream",
]
DATABASES = {}
EVENTSTREAM_REDIS = {
    "host": os.environ.get("VALKEY_HOST", "127.0.0.1"),
    "port": int(os.environ["VALKEY_PORT"]),
    "db": 0,
}
