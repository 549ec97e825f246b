"""Publishing over HTTP: ``POST /v1/publish``, one event or a batch.

A batch is one request, accepted or refused whole: the package checks every
event before it sends any (see :mod:`edgestream.events`), and the relay
stores none of a batch it refuses. Within a channel, events are stored and
delivered in the order given.

Failures that may pass (connection errors, timeouts, 429, 5xx) are retried
with the same body, idempotency keys included, so a retry of a publish the
relay had already stored comes back ``duplicate: true`` and reaches no
subscriber twice. See :mod:`edgestream.retry` for the waits.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from . import __version__
from .errors import BatchTooLarge
from .events import (
    DEFAULT_MAX_EVENT_BYTES,
    MAX_BATCH_EVENTS,
    Event,
    PreparedEvent,
    batch_body,
    prepare,
)
from .retry import RetryPolicy
from .transport import Credential, MalformedAnswer, Transport

__all__ = ["PublishResult", "Publisher"]


@dataclass(frozen=True)
class PublishResult:
    """What the relay did with one event.

    Attributes:
        channel: the event's channel.
        id: its sequence number in the channel (the ``<seq>`` of the stream's
            event ids).
        duplicate: true when the relay already had the idempotency key; the
            event was not delivered again and ``id`` is the original one.
        idempotency_key: the key the event was sent with (the caller's, or
            the one generated for it).
    """

    channel: str
    id: int
    duplicate: bool
    idempotency_key: str


class Publisher:
    """Publishes events to one relay with one credential.

    Args:
        url: the relay, ``https://relay.example.com`` (``http://`` only for a
            loopback host).
        api_key: an API key with the ``events:publish`` scope, sent as
            ``Authorization: Api-Key``.
        token: a JWT with the ``events:publish`` scope, or a function that
            returns a current one (called for every attempt), sent as
            ``Authorization: Bearer``. Give exactly one of ``api_key`` and
            ``token``.
        timeout: seconds for connecting and for each read.
        retry: the retry policy; see :class:`~edgestream.retry.RetryPolicy`.
        max_event_bytes: the relay's ``MAX_EVENT_BYTES``, for the local check.
        encoder: a :class:`json.JSONEncoder` subclass for event data.
        ssl_context: for ``https://``; the system's trust store by default.

    Safe to share between threads.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | Callable[[], str] | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        encoder: type[json.JSONEncoder] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._transport = Transport(
            url,
            Credential(api_key=api_key, token=token),
            timeout=timeout,
            retry=retry,
            ssl_context=ssl_context,
            user_agent=f"edgestream-python/{__version__}",
        )
        self.max_event_bytes = max_event_bytes
        self.encoder = encoder

    @property
    def url(self) -> str:
        return self._transport.url

    @property
    def retry(self) -> RetryPolicy:
        return self._transport.retry

    def __repr__(self) -> str:
        return f"Publisher({self.url!r})"

    def publish(
        self,
        channel: str,
        event: str,
        data: Any,
        *,
        idempotency_key: str | None = None,
    ) -> PublishResult:
        """Publishes one event.

        Raises:
            InvalidChannel, InvalidBody, EventTooLarge: (``ValueError``\\ s)
                before anything is sent, or as the relay's answer.
            Problem: (its subclass for the code) the relay refused the event.
            RelayUnreachable: the retries ran out without an answer.
        """
        return self.publish_batch([Event(channel, event, data, idempotency_key)])[0]

    def publish_batch(self, events: Sequence[Event]) -> list[PublishResult]:
        """Publishes 1 to 100 events in one request; one result per event,
        in order. Nothing is sent unless every event passes the checks.

        Raises: as :meth:`publish`, and :class:`BatchTooLarge` for more than
        100 events or none.
        """
        if not 0 < len(events) <= MAX_BATCH_EVENTS:
            raise BatchTooLarge(f"a publish request carries 1 to {MAX_BATCH_EVENTS} events")
        return self.send_prepared([self.prepare(event) for event in events])

    def prepare(self, event: Event) -> PreparedEvent:
        """Checks and encodes one event with this publisher's limits (the
        step :meth:`publish_batch` runs first)."""
        return prepare(event, max_event_bytes=self.max_event_bytes, encoder=self.encoder)

    def send_prepared(self, events: list[PreparedEvent]) -> list[PublishResult]:
        """Sends events that :meth:`prepare` made, retrying as needed."""

        def read(body: bytes) -> list[PublishResult]:
            return _results(body, events)

        return self._transport.call("/v1/publish", batch_body(events), 202, read)

    def close(self) -> None:
        """Closes idle connections; the publisher stays usable."""
        self._transport.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _results(body: bytes, sent: list[PreparedEvent]) -> list[PublishResult]:
    try:
        answer = json.loads(body)
        results = answer["results"]
        if not isinstance(results, list) or len(results) != len(sent):
            raise MalformedAnswer(f"{len(sent)} events sent, results do not match")
        out = []
        for result, event in zip(results, sent, strict=True):
            seq, duplicate = result["id"], result["duplicate"]
            if (
                result["channel"] != event.channel
                or isinstance(seq, bool)
                or not isinstance(seq, int)
                or not isinstance(duplicate, bool)
            ):
                raise MalformedAnswer("a result does not match its event")
            out.append(PublishResult(event.channel, seq, duplicate, event.idempotency_key))
        return out
    except (ValueError, KeyError, TypeError) as err:
        raise MalformedAnswer(f"not a publish answer ({type(err).__name__})") from None
