"""Django settings of an origin app for the tests, in one of two SimpleJWT
set-ups (``EDGESTREAM_TEST_SIMPLE_JWT``), each keeping stream tokens and the
API's tokens apart in one of the two ways docs/python.md describes:

- ``hs256``: SimpleJWT's defaults with the API's own secret; stream tokens
  are signed with the relay's ``JWT_SECRET`` (``EDGESTREAM_SIGNING_KEY``);
- ``rs256``: Prowler's: RS256 with a private signing key shared with the
  relay (which holds the public one as ``JWT_PUBLIC_KEY``),
  ``TOKEN_TYPE_CLAIM = "typ"``, the user in ``sub``, and an ``AUDIENCE`` and
  ``ISSUER`` of the API's own.
"""

import os

SECRET_KEY = "edgestream-python-tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
EDGESTREAM_URL = os.environ.get("EDGESTREAM_TEST_URL")

SIMPLE_JWT_MODE = os.environ.get("EDGESTREAM_TEST_SIMPLE_JWT", "hs256")
if SIMPLE_JWT_MODE == "rs256":
    SIMPLE_JWT = {
        "ALGORITHM": "RS256",
        "SIGNING_KEY": os.environ.get("EDGESTREAM_TEST_RSA_PRIVATE_KEY", ""),
        "VERIFYING_KEY": os.environ.get("EDGESTREAM_TEST_RSA_PUBLIC_KEY", ""),
        "TOKEN_TYPE_CLAIM": "typ",
        "JTI_CLAIM": "jti",
        "USER_ID_FIELD": "id",
        "USER_ID_CLAIM": "sub",
        "AUDIENCE": "https://api.example.com",
        "ISSUER": "https://api.example.com",
    }
else:
    SIMPLE_JWT = {"SIGNING_KEY": "the-api-own-secret-not-known-to-the-relay"}
    EDGESTREAM_SIGNING_KEY = os.environ.get("EDGESTREAM_TEST_JWT_SECRET")
