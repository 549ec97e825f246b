"""Stream tokens and tickets minted by SimpleJWT for a Django user, against
the relay. Runs under both SimpleJWT set-ups of django_settings.py (HS256
defaults; Prowler's RS256 with a `typ` claim and an API audience)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from fault_proxy import FaultProxy
from relay_env import Relay
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken
from sse_reader import Stream

from edgestream import ChannelForbidden, InvalidToken, Publisher, make_channel_name
from edgestream.django import stream_ticket, stream_token

RS256 = settings.SIMPLE_JWT_MODE == "rs256"
TYPE_CLAIM = "typ" if RS256 else "token_type"


def ada() -> User:
    return User(id=42, username="ada")


def decode(relay: Relay, token: str, audience: str = "edgestream") -> dict[str, Any]:
    """Verifies the token as the relay would, with PyJWT."""
    if RS256:
        return jwt.decode(token, relay.rsa_public_key, algorithms=["RS256"], audience=audience)
    return jwt.decode(token, relay.jwt_secret, algorithms=["HS256"], audience=audience)


def publish(relay: Relay, channel: str, data: object) -> None:
    Publisher(relay.url, api_key=relay.platform_key).publish(channel, "scan.progress", data)


def test_the_claims_the_relay_reads(relay: Relay) -> None:
    before = int(time.time())
    claims = decode(relay, stream_token(ada(), relay.tenant))
    assert claims[TYPE_CLAIM] == "access"
    assert claims["tenant_id"] == relay.tenant
    assert claims["aud"] == "edgestream"
    assert claims["sub"] == "42"
    assert before + 300 <= claims["exp"] <= int(time.time()) + 300
    assert claims["exp"] - claims["iat"] == 300
    assert claims["jti"]
    if RS256:
        assert claims["iss"] == "https://api.example.com"
        assert jwt.get_unverified_header(stream_token(ada(), relay.tenant))["alg"] == "RS256"
    else:
        assert claims["user_id"] == "42"


def test_the_token_opens_its_tenants_streams_only(
    relay: Relay, channel: str, other_tenant: str
) -> None:
    token = stream_token(ada(), uuid.UUID(relay.tenant))
    with Stream(relay.url, [channel], token=token) as s:
        assert s.status == 200, s.problem
        publish(relay, channel, {"pct": 7})
        assert [e.json() for e in s.wait_for(1)] == [{"pct": 7}]
    refused = Stream(relay.url, [relay.channel(other_tenant)], token=token)
    assert (refused.status, refused.problem["code"]) == (403, "channel_forbidden")


def test_stream_tokens_and_api_tokens_do_not_mix(relay: Relay, channel: str) -> None:
    """The API refuses a stream token, and the relay the API's own token,
    although both carry the tenant: by their keys (hs256) or, with a shared
    key, by their audiences (rs256)."""
    with pytest.raises(TokenError):
        AccessToken(stream_token(ada(), relay.tenant))
    api_token = AccessToken.for_user(ada())
    api_token["tenant_id"] = relay.tenant
    AccessToken(str(api_token))
    refused = Stream(relay.url, [channel], token=str(api_token))
    assert (refused.status, refused.problem["code"]) == (401, "invalid_token")


def test_lifetime_audience_and_claims(relay: Relay) -> None:
    import datetime

    for lifetime in (60, datetime.timedelta(seconds=60)):
        claims = decode(relay, stream_token(ada(), relay.tenant, lifetime=lifetime))
        assert claims["exp"] - claims["iat"] == 60
    claims = decode(
        relay,
        stream_token(ada(), relay.tenant, audience="other", claims={"scope": "x", "aud": "no"}),
        audience="other",
    )
    assert (claims["aud"], claims["scope"]) == ("other", "x")
    forced = stream_token(
        ada(), relay.tenant, claims={TYPE_CLAIM: "refresh", "tenant_id": "x", "exp": 1}
    )
    claims = decode(relay, forced)
    assert (claims[TYPE_CLAIM], claims["tenant_id"]) == ("access", relay.tenant)
    assert claims["exp"] > time.time()
    for bad_tenant in (relay.tenant.upper(), "tenant", "", 42):
        with pytest.raises(ValueError):
            stream_token(ada(), bad_tenant)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        stream_token(ada(), relay.tenant, lifetime=0)


def test_a_ticket_opens_one_stream_once(relay: Relay, channel: str) -> None:
    ticket = stream_ticket(ada(), relay.tenant, [channel])
    assert ticket.channels == (channel,) and ticket.expires_in == 60
    assert ticket.stream_url == f"{relay.url}/v1/stream?ticket={ticket.ticket}"
    assert ticket.ticket not in repr(ticket)
    with Stream(relay.url, [], ticket=ticket.ticket, from_start=False) as s:
        assert s.status == 200, s.problem
        publish(relay, channel, "live")
        assert [e.json() for e in s.wait_for(1)] == ["live"]
    again = Stream(relay.url, [], ticket=ticket.ticket, from_start=False)
    assert (again.status, again.problem["code"]) == (401, "invalid_token")


def test_a_ticket_for_another_tenant_is_refused_before_asking(
    relay: Relay, other_tenant: str, proxy: FaultProxy
) -> None:
    with pytest.raises(ChannelForbidden):
        stream_ticket(
            ada(), relay.tenant, [relay.channel(), relay.channel(other_tenant)], url=proxy.url
        )
    assert proxy.seen == []


def test_tickets_refused_by_the_relay_raise_their_class(relay: Relay, channel: str) -> None:
    from edgestream import TenantMissing, request_ticket

    with pytest.raises(TenantMissing):
        request_ticket(relay.url, [channel], api_key=relay.no_tenant_key)
    with pytest.raises(InvalidToken):
        request_ticket(relay.url, [channel], token="x.y.z")
    assert request_ticket(relay.url, [channel], api_key=relay.api_key).channels == (channel,)


# The view of docs/python.md, less its database lookup.
@api_view(["POST"])
@permission_classes([IsAuthenticated])
def scan_stream_ticket(request: Request, scan_id: str) -> Response:
    tenant_id = request.auth["tenant_id"]
    channel = make_channel_name("scan-progress", tenant_id, scan_id)
    ticket = stream_ticket(request.user, tenant_id, [channel])
    return Response({"ticket": ticket.ticket, "stream_url": ticket.stream_url, "channel": channel})


def test_the_documented_view(relay: Relay) -> None:
    user = ada()
    api_token = AccessToken.for_user(user)
    api_token["tenant_id"] = relay.tenant
    request = APIRequestFactory().post("/api/scans/scan-42/stream-ticket/")
    force_authenticate(request, user=user, token=api_token)
    scan_id = uuid.uuid4().hex
    response = scan_stream_ticket(request, scan_id=scan_id)
    assert response.status_code == 200
    channel = response.data["channel"]
    assert channel == f"scan-progress:{relay.tenant}:{scan_id}"
    ticket = response.data["ticket"]
    assert response.data["stream_url"] == f"{relay.url}/v1/stream?ticket={ticket}"
    with Stream(relay.url, [], ticket=ticket, from_start=False) as s:
        assert s.status == 200, s.problem
        publish(relay, channel, {"pct": 100})
        assert [e.json() for e in s.wait_for(1)] == [{"pct": 100}]
