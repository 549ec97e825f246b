"""Publish to the edgestream Server-Sent Events relay from Python.

- :func:`make_channel_name`, :func:`parse_channel`,
  :func:`tenant_id_from_channel`: channel names, by the relay's rules;
- :class:`Publisher`: ``POST /v1/publish``, single events and batches, with
  retries that never duplicate an event;
- :func:`send_event`: django-eventstream's ``send_event()``, over HTTP;
- :func:`request_ticket`: single-use stream tickets;
- :mod:`edgestream.django`: stream tokens and tickets for Django users,
  signed by SimpleJWT;
- one exception class per problem code, in :mod:`edgestream.errors`.
"""

__version__ = "0.1.0"

from .background import BackgroundPublisher, QueueFull
from .channels import Channel, make_channel_name, parse_channel, tenant_id_from_channel
from .compat import configure, get_background_publisher, get_publisher, send_event
from .errors import (
    BatchTooLarge,
    ChannelForbidden,
    EdgestreamError,
    EventTooLarge,
    InsufficientScope,
    InternalError,
    InvalidBody,
    InvalidChannel,
    InvalidCursor,
    InvalidToken,
    MethodNotAllowed,
    MissingCredentials,
    NoChannels,
    NotFound,
    Overloaded,
    PlatformOnly,
    Problem,
    QuotaExceeded,
    RelayUnreachable,
    Revoked,
    TenantMissing,
    TooManyChannels,
    Unavailable,
    UnsupportedMediaType,
)
from .events import Event, RawJSON
from .publisher import Publisher, PublishResult
from .retry import RetryPolicy
from .tickets import Ticket, request_ticket

__all__ = [
    "BackgroundPublisher",
    "BatchTooLarge",
    "Channel",
    "ChannelForbidden",
    "EdgestreamError",
    "Event",
    "EventTooLarge",
    "InsufficientScope",
    "InternalError",
    "InvalidBody",
    "InvalidChannel",
    "InvalidCursor",
    "InvalidToken",
    "MethodNotAllowed",
    "MissingCredentials",
    "NoChannels",
    "NotFound",
    "Overloaded",
    "PlatformOnly",
    "Problem",
    "PublishResult",
    "Publisher",
    "QueueFull",
    "QuotaExceeded",
    "RawJSON",
    "RelayUnreachable",
    "RetryPolicy",
    "Revoked",
    "TenantMissing",
    "Ticket",
    "TooManyChannels",
    "Unavailable",
    "UnsupportedMediaType",
    "configure",
    "get_background_publisher",
    "get_publisher",
    "make_channel_name",
    "parse_channel",
    "request_ticket",
    "send_event",
    "tenant_id_from_channel",
]
