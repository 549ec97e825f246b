"""Stream tickets: ``POST /v1/tickets``.

A ticket opens one stream, once, within 60 seconds, and only for the
channels it names, so a page never needs a token in its URL. Ask for one on
the server, with a credential that stays there, after your own checks of
what the user may read; hand the page only the ticket (or its stream URL).

The stream a ticket opens ends when the credential that asked for it
expires, so the lifetime of that credential is the stream's.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from . import __version__
from .channels import parse_channel
from .errors import NoChannels
from .retry import RetryPolicy
from .transport import Credential, MalformedAnswer, Transport

__all__ = ["Ticket", "request_ticket"]


@dataclass(frozen=True)
class Ticket:
    """A stream ticket.

    Attributes:
        ticket: the single-use ticket (64 hex digits); a secret until used.
        expires_in: seconds left to open the stream with it.
        channels: the channels it opens.
        stream_url: ``<relay>/v1/stream?ticket=<ticket>``, for the page's
            ``EventSource``.
    """

    ticket: str
    expires_in: int
    channels: tuple[str, ...]
    stream_url: str

    def __repr__(self) -> str:
        return f"Ticket(channels={self.channels!r}, expires_in={self.expires_in})"


def request_ticket(
    url: str,
    channels: Sequence[str],
    *,
    token: str | Callable[[], str] | None = None,
    api_key: str | None = None,
    timeout: float = 10.0,
    retry: RetryPolicy | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Ticket:
    """Asks the relay at ``url`` for a ticket to ``channels``, with a token
    (``Bearer``) or an API key, each of the channels' tenant.

    Raises:
        InvalidChannel: a channel name breaks the rules (before sending).
        ChannelForbidden: a channel of another tenant than the credential's.
        TenantMissing: the credential has no tenant.
        Problem: any other refusal; RelayUnreachable: no answer.
    """
    if isinstance(channels, str):
        raise TypeError("channels must be a sequence of names, not one string")
    names = [parse_channel(channel).name for channel in channels]
    if not names:
        raise NoChannels("name at least one channel")
    transport = Transport(
        url,
        Credential(api_key=api_key, token=token),
        timeout=timeout,
        retry=retry,
        ssl_context=ssl_context,
        user_agent=f"edgestream-python/{__version__}",
    )
    body = json.dumps({"channels": names}).encode("utf-8")
    try:
        return transport.call("/v1/tickets", body, 201, lambda b: _ticket(b, transport.url))
    finally:
        transport.close()


def _ticket(body: bytes, base: str) -> Ticket:
    try:
        answer = json.loads(body)
        ticket, expires_in, channels = answer["ticket"], answer["expires_in"], answer["channels"]
        if not (
            isinstance(ticket, str)
            and isinstance(expires_in, int)
            and isinstance(channels, list)
            and all(isinstance(c, str) for c in channels)
        ):
            raise MalformedAnswer("not a ticket answer")
    except (ValueError, KeyError, TypeError) as err:
        raise MalformedAnswer(f"not a ticket answer ({type(err).__name__})") from None
    stream_url = f"{base}/v1/stream?{urlencode({'ticket': ticket})}"
    return Ticket(ticket, expires_in, tuple(channels), stream_url)
