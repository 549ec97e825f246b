"""Stream tokens and tickets for the current Django user, signed by SimpleJWT.

:func:`stream_token` mints a SimpleJWT access token for the user with what
the relay reads: the tenant claim, ``exp`` a few minutes out, and an
audience of its own (``aud: "edgestream"``). It is signed with your
SimpleJWT key and algorithm (HS256 with ``SIGNING_KEY``, RS256 with a
private key: give the relay ``JWT_SECRET`` or ``JWT_PUBLIC_KEY`` to match)
or with a key of the relay's own (below),
and its token type claim is whatever SimpleJWT's ``TOKEN_TYPE_CLAIM`` names
(``token_type``, or ``typ`` as Prowler sets it), with the value ``access``.

Keep stream tokens and your API's access tokens apart: a stream token is
handed to a browser and must not work against your API, and your API's
tokens (which carry the tenant too) must not open streams. Either
- give the relay a key of its own, ``EDGESTREAM_SIGNING_KEY`` (an HMAC
  secret, or a private key with ``EDGESTREAM_SIGNING_ALGORITHM``), which
  the relay verifies and your API does not know; or
- share SimpleJWT's key with the relay, and set SimpleJWT's ``AUDIENCE`` for
  your API (Prowler does) and ``JWT_AUDIENCE=edgestream`` at the relay: each
  side then refuses the other's tokens by their audience. SimpleJWT checks
  no audience when its ``AUDIENCE`` is unset, so without it a stream token
  is also a valid API token until it expires.
The token's audience is the relay's even when SimpleJWT has an ``AUDIENCE``
of its own.

:func:`stream_ticket` goes one step further: it asks the relay, from the
server, for a single-use ticket to the channels your code allowed, so the
browser holds no token at all.

Settings (all optional): ``EDGESTREAM_URL`` (for tickets),
``EDGESTREAM_SIGNING_KEY`` and ``EDGESTREAM_SIGNING_ALGORITHM`` (default:
SimpleJWT's key and algorithm),
``EDGESTREAM_AUDIENCE`` (default ``"edgestream"``; empty for none),
``EDGESTREAM_TENANT_CLAIM`` (default ``"tenant_id"``, the relay's
``TENANT_CLAIM``), ``EDGESTREAM_STREAM_TOKEN_LIFETIME`` (seconds or a
``timedelta``, default 5 minutes).

Needs ``pip install "edgestream[django]"`` (Django and
djangorestframework-simplejwt).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from .channels import is_canonical_uuid, parse_channel
from .errors import ChannelForbidden
from .tickets import Ticket, request_ticket

__all__ = ["stream_ticket", "stream_token"]

_DEFAULT_AUDIENCE = "edgestream"
_DEFAULT_TENANT_CLAIM = "tenant_id"
_DEFAULT_LIFETIME = datetime.timedelta(minutes=5)


def stream_token(
    user: Any,
    tenant_id: str | uuid.UUID,
    *,
    lifetime: datetime.timedelta | int | None = None,
    audience: str | None = None,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """A short-lived access token for ``user`` in ``tenant_id``, for the
    relay only.

    Args:
        user: a Django user (anything SimpleJWT's ``AccessToken.for_user``
            takes).
        tenant_id: the tenant, a :class:`uuid.UUID` or its canonical
            lowercase string.
        lifetime: how long the token (and a stream opened with it) lasts;
            ``EDGESTREAM_STREAM_TOKEN_LIFETIME`` by default.
        audience: ``aud``; ``EDGESTREAM_AUDIENCE`` by default.
        claims: more claims (a ``scope``, say); the tenant, ``aud``,
            ``exp`` and token type claims are always the ones set here.

    Raises:
        ValueError: ``tenant_id`` is not a canonical UUID, or ``lifetime``
            is not positive.
    """
    tenant = _tenant(tenant_id)
    token = AccessToken.for_user(user)
    for name, value in (claims or {}).items():
        token[name] = value
    token[api_settings.TOKEN_TYPE_CLAIM] = AccessToken.token_type
    token.set_exp(lifetime=_lifetime(lifetime))
    token[_tenant_claim()] = tenant
    # The relay reads the user from `sub` or `user_id`; SimpleJWT may put it
    # under another name.
    token.payload.setdefault("sub", token[api_settings.USER_ID_CLAIM])
    if audience is None:
        audience = getattr(settings, "EDGESTREAM_AUDIENCE", _DEFAULT_AUDIENCE)
    token.payload.pop("aud", None)
    configured = token.get_token_backend()
    # SimpleJWT's own backend would write its AUDIENCE over ours: sign with
    # the relay's audience, and the relay's key if it has one.
    key = getattr(settings, "EDGESTREAM_SIGNING_KEY", None)
    backend = TokenBackend(
        getattr(settings, "EDGESTREAM_SIGNING_ALGORITHM", None) or configured.algorithm,
        key or configured.signing_key,
        "" if key else configured.verifying_key,
        audience or None,
        configured.issuer,
        None,
        configured.leeway,
        configured.json_encoder,
    )
    return str(backend.encode(token.payload))


def stream_ticket(
    user: Any,
    tenant_id: str | uuid.UUID,
    channels: Sequence[str],
    *,
    url: str | None = None,
    lifetime: datetime.timedelta | int | None = None,
    audience: str | None = None,
    timeout: float = 10.0,
) -> Ticket:
    """A single-use ticket to ``channels`` for ``user`` in ``tenant_id``.

    Run your own checks of what the user may read first: the relay checks
    only that every channel is the tenant's. The ticket is asked for with a
    :func:`stream_token` that never leaves the server; the stream it opens
    ends when that token expires (``lifetime``), and a kick of the user
    reaches it.

    Raises:
        InvalidChannel: a channel name breaks the rules.
        ChannelForbidden: a channel of another tenant (before sending).
        Problem, RelayUnreachable: the relay refused or could not be reached.
    """
    tenant = _tenant(tenant_id)
    if isinstance(channels, str):
        raise TypeError("channels must be a sequence of names, not one string")
    for channel in channels:
        if parse_channel(channel).tenant_id != tenant:
            raise ChannelForbidden(f'the tenant may not access channel "{channel}"')
    relay = url or getattr(settings, "EDGESTREAM_URL", None)
    if not relay:
        raise ValueError("set EDGESTREAM_URL or pass url=")
    token = stream_token(user, tenant, lifetime=lifetime, audience=audience)
    return request_ticket(str(relay), channels, token=token, timeout=timeout)


def _tenant(tenant_id: str | uuid.UUID) -> str:
    tenant = str(tenant_id) if isinstance(tenant_id, uuid.UUID) else tenant_id
    if not isinstance(tenant, str) or not is_canonical_uuid(tenant):
        raise ValueError("tenant_id must be a UUID (canonical lowercase form if a string)")
    return tenant


def _tenant_claim() -> str:
    return str(getattr(settings, "EDGESTREAM_TENANT_CLAIM", _DEFAULT_TENANT_CLAIM))


def _lifetime(value: datetime.timedelta | int | None) -> datetime.timedelta:
    if value is None:
        value = getattr(settings, "EDGESTREAM_STREAM_TOKEN_LIFETIME", _DEFAULT_LIFETIME)
    lifetime = value if isinstance(value, datetime.timedelta) else datetime.timedelta(seconds=value)
    if lifetime <= datetime.timedelta(0):
        raise ValueError("the stream token's lifetime must be positive")
    return lifetime
