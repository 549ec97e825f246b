"""The worker under test, as tests/python.test.mjs describes it in the
environment, and helpers that talk to it without the package (raw HTTP,
tokens signed by PyJWT), so the package is checked against something it did
not produce."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import jwt


@dataclass(frozen=True)
class Relay:
    url: str
    tenant: str
    #: events:publish for `tenant`.
    api_key: str
    #: events:publish events:platform, no tenant.
    platform_key: str
    #: `tenant`, no scope.
    no_scope_key: str
    #: events:publish, no tenant, not a platform key.
    no_tenant_key: str
    jwt_secret: str
    audience: str
    rsa_private_key: str
    rsa_public_key: str

    @classmethod
    def from_environment(cls) -> Relay:
        env = os.environ
        return cls(
            url=env["EDGESTREAM_TEST_URL"],
            tenant=env["EDGESTREAM_TEST_TENANT"],
            api_key=env["EDGESTREAM_TEST_API_KEY"],
            platform_key=env["EDGESTREAM_TEST_PLATFORM_KEY"],
            no_scope_key=env["EDGESTREAM_TEST_NO_SCOPE_KEY"],
            no_tenant_key=env["EDGESTREAM_TEST_NO_TENANT_KEY"],
            jwt_secret=env["EDGESTREAM_TEST_JWT_SECRET"],
            audience=env["EDGESTREAM_TEST_AUDIENCE"],
            rsa_private_key=env["EDGESTREAM_TEST_RSA_PRIVATE_KEY"],
            rsa_public_key=env["EDGESTREAM_TEST_RSA_PUBLIC_KEY"],
        )

    def channel(self, tenant: str | None = None, prefix: str = "py-test") -> str:
        return f"{prefix}:{tenant or self.tenant}:{uuid.uuid4().hex[:12]}"

    def subscriber_token(self, tenant: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "sub": "subscriber-1",
            "token_type": "access",
            "tenant_id": tenant or self.tenant,
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        return jwt.encode(body, self.jwt_secret, algorithm="HS256")

    def post(self, path: str, body: Any, *, api_key: str | None = None) -> tuple[int, Any]:
        """POSTs JSON (or text taken as it is) straight to the relay."""
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Api-Key {api_key or self.platform_key}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())
