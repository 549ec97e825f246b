"""``send_event()`` as django-eventstream has it, publishing over HTTP.

Existing calls keep working when ``from django_eventstream import
send_event`` becomes ``from edgestream import send_event``: the signature
and the meaning of each argument are django-eventstream's, and no Valkey and
no bridge are needed.

- ``data`` is JSON-encoded with Django's ``DjangoJSONEncoder`` when Django is
  installed (dates, decimals, UUIDs, lazy strings), as django-eventstream
  encodes it, and with the standard library's ``json`` without Django. With
  ``json_encode=False`` a string is taken as JSON text that the caller
  wrote, sent as that JSON value, or as a JSON string when it is not JSON.
- ``async_publish=True`` (the default) checks the event at once, raising
  ``ValueError`` for a bad channel name, event type or oversized data, then
  queues it for a background thread that publishes in batches, in order,
  with retries (see :mod:`edgestream.background`). Delivery failures are
  logged, not raised. ``async_publish=False`` publishes before returning and
  raises what went wrong. It first waits for the events this process queued
  before it, so a caller's events reach the relay in the order of its calls,
  whichever way each was sent; if they are still waiting after
  ``sync_wait`` seconds (30 by default), the call raises
  :class:`~edgestream.RelayUnreachable` without publishing.
- ``skip_user_ids`` is accepted and has no effect: the relay does not know
  your users, and every subscriber of a channel gets its events.

Where to publish comes from :func:`configure`, or else from Django settings
or environment variables of the same names: ``EDGESTREAM_URL`` and one of
``EDGESTREAM_API_KEY`` and ``EDGESTREAM_TOKEN`` (optionally
``EDGESTREAM_MAX_EVENT_BYTES``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from .background import BackgroundPublisher, ErrorHandler
from .errors import RelayUnreachable
from .events import DEFAULT_MAX_EVENT_BYTES, Event, data_from_text
from .publisher import Publisher
from .retry import RetryPolicy

__all__ = ["configure", "get_background_publisher", "get_publisher", "send_event"]

_log = logging.getLogger("edgestream")
_lock = threading.Lock()
_first_use = threading.Lock()
_publisher: Publisher | None = None
_background: BackgroundPublisher | None = None
_sync_wait = 30.0
_warned_skip_user_ids = False


def configure(
    url: str | None = None,
    *,
    api_key: str | None = None,
    token: str | None = None,
    publisher: Publisher | None = None,
    retry: RetryPolicy | None = None,
    timeout: float = 10.0,
    max_event_bytes: int | None = None,
    max_queue: int = 10_000,
    on_error: ErrorHandler | None = None,
    sync_wait: float = 30.0,
) -> Publisher:
    """Sets where :func:`send_event` publishes: a ready ``publisher``, or a
    ``url`` with a credential. Unset arguments come from settings or the
    environment. Events queued for the previous configuration are flushed
    first. Returns the publisher in use."""
    global _publisher, _background, _sync_wait
    if publisher is None:
        url = url or _setting("EDGESTREAM_URL")
        if not url:
            raise ValueError(
                "set EDGESTREAM_URL (Django setting or environment) or call edgestream.configure()"
            )
        if api_key is None and token is None:
            api_key = _setting("EDGESTREAM_API_KEY")
            token = None if api_key else _setting("EDGESTREAM_TOKEN")
        if max_event_bytes is None:
            max_event_bytes = int(_setting("EDGESTREAM_MAX_EVENT_BYTES") or DEFAULT_MAX_EVENT_BYTES)
        publisher = Publisher(
            url,
            api_key=api_key,
            token=token,
            retry=retry,
            timeout=timeout,
            max_event_bytes=max_event_bytes,
            encoder=_default_encoder(),
        )
    background = BackgroundPublisher(publisher, max_queue=max_queue, on_error=on_error)
    with _lock:
        previous, _publisher, _background = _background, publisher, background
        _sync_wait = sync_wait
    if previous is not None:
        previous.close(previous.exit_timeout)
    return publisher


def get_publisher() -> Publisher:
    """The publisher :func:`send_event` uses, configured on first use."""
    publisher, _ = _configured()
    return publisher


def get_background_publisher() -> BackgroundPublisher:
    """The queue behind ``send_event(..., async_publish=True)``; call its
    ``flush()`` where a task must know its events went out."""
    _, background = _configured()
    return background


def send_event(
    channel: str,
    event_type: str,
    data: Any,
    skip_user_ids: Iterable[Any] | None = None,
    async_publish: bool = True,
    json_encode: bool = True,
) -> None:
    """Publishes ``data`` as an ``event_type`` event on ``channel``.

    Raises:
        InvalidChannel, InvalidBody, EventTooLarge: (``ValueError``\\ s) the
            event is bad, whichever ``async_publish``.
        QueueFull: with ``async_publish``, the queue stayed full.
        Problem, RelayUnreachable: without ``async_publish``, the relay
            refused the event or could not be reached.
    """
    global _warned_skip_user_ids
    if skip_user_ids and not _warned_skip_user_ids:
        _warned_skip_user_ids = True
        _log.warning(
            json.dumps({"message": "send_event(skip_user_ids=...) has no effect at the relay"})
        )
    if not json_encode and isinstance(data, str):
        data = data_from_text(data)
    publisher, background = _configured()
    event = Event(channel, event_type, data)
    if async_publish:
        background.submit(event)
        return
    prepared = publisher.prepare(event)
    if not background.flush(_sync_wait):
        raise RelayUnreachable(
            "events queued earlier are still waiting for the relay; this one was not sent",
            attempts=0,
        )
    publisher.send_prepared([prepared])


def _configured() -> tuple[Publisher, BackgroundPublisher]:
    with _lock:
        if _publisher is not None and _background is not None:
            return _publisher, _background
    # Threads that call send_event() first at the same moment configure it
    # once between them.
    with _first_use:
        with _lock:
            configured = _publisher is not None
        if not configured:
            configure()
    with _lock:
        assert _publisher is not None and _background is not None
        return _publisher, _background


def _setting(name: str) -> str | None:
    """A Django setting when Django is configured, else the environment."""
    try:
        from django.conf import settings
    except ImportError:
        settings = None
    if settings is not None and settings.configured:
        value = getattr(settings, name, None)
        if value is not None:
            return str(value)
    return os.environ.get(name) or None


def _default_encoder() -> type[json.JSONEncoder] | None:
    try:
        from django.core.serializers.json import DjangoJSONEncoder
    except ImportError:
        return None
    encoder: type[json.JSONEncoder] = DjangoJSONEncoder
    return encoder
