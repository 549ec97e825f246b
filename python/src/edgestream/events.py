"""Events on their way to ``POST /v1/publish``: checked, encoded, keyed.

An event is checked here against the relay's publish rules
(``core/src/message.rs``) before anything is sent, so a bad one fails in the
caller with the exception the relay would have answered with, and a batch
is refused whole, as the relay refuses it.

Each event is encoded once, with its idempotency key, into the exact JSON
the relay receives. A retry sends those same bytes again: the keys never
change between attempts, which is what lets the relay recognise a retry of
something it already stored. An event given without a key gets a random one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from .channels import parse_channel
from .errors import EventTooLarge, InvalidBody

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "MAX_BATCH_EVENTS",
    "Event",
    "PreparedEvent",
    "RawJSON",
    "batch_body",
    "data_from_text",
    "prepare",
]

MAX_BATCH_EVENTS = 100
#: The relay's default ``MAX_EVENT_BYTES``.
DEFAULT_MAX_EVENT_BYTES = 65536
_MAX_EVENT_TYPE_CHARS = 64
_MAX_IDEMPOTENCY_KEY_CHARS = 128
_RESERVED_EVENT_PREFIX = "stream-"
_EVENT_TYPE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


@dataclass(frozen=True)
class RawJSON:
    """Data that is already JSON text, sent as it is written (only the
    whitespace between tokens is dropped, as the relay does): key order and
    number spelling stay the publisher's."""

    text: str


@dataclass(frozen=True)
class Event:
    """One event to publish.

    Attributes:
        channel: the channel name (see :func:`edgestream.make_channel_name`).
        event: the event type, 1-64 of ``A-Z a-z 0-9 _ . -``, not starting
            with ``stream-``; by convention ``resource.verb``.
        data: any JSON-serialisable value, or :class:`RawJSON`.
        idempotency_key: 1-128 visible ASCII characters. A repeated key on the
            same channel is stored once. ``None`` gets a random key.
    """

    channel: str
    event: str
    data: Any
    idempotency_key: str | None = None


@dataclass(frozen=True)
class PreparedEvent:
    """An event that passed the checks, as the JSON object the relay gets."""

    channel: str
    idempotency_key: str
    json: str


def prepare(
    event: Event,
    *,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    encoder: type[json.JSONEncoder] | None = None,
) -> PreparedEvent:
    """Checks an event and encodes it with its idempotency key.

    Raises:
        InvalidChannel: the channel name breaks the rules.
        InvalidBody: the event type or key breaks the rules, or the data
            cannot be encoded as JSON.
        EventTooLarge: the data is more than ``max_event_bytes`` of compact
            JSON.
    """
    parse_channel(event.channel)
    if not _is_event_type(event.event):
        raise InvalidBody(
            f"event: must be 1-{_MAX_EVENT_TYPE_CHARS} characters of A-Z, a-z, 0-9, "
            f"'_', '.' and '-', not starting with \"{_RESERVED_EVENT_PREFIX}\""
        )
    key = event.idempotency_key
    if key is None:
        key = str(uuid.uuid4())
    elif not _is_idempotency_key(key):
        raise InvalidBody(
            f"idempotency_key: must be 1-{_MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
        )
    data = _encode_data(event.data, encoder)
    try:
        size = len(data.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise InvalidBody(f"data: not encodable as UTF-8 ({err.reason})") from None
    if size > max_event_bytes:
        raise EventTooLarge(
            f"an event's data may be at most {max_event_bytes} bytes of compact JSON "
            f"(this one is {size})"
        )
    text = (
        f'{{"channel":{json.dumps(event.channel)},"event":{json.dumps(event.event)},'
        f'"data":{data},"idempotency_key":{json.dumps(key)}}}'
    )
    return PreparedEvent(event.channel, key, text)


def batch_body(events: list[PreparedEvent]) -> bytes:
    """The ``{"events":[...]}`` body for up to 100 prepared events."""
    return ('{"events":[' + ",".join(e.json for e in events) + "]}").encode("utf-8")


def data_from_text(text: str) -> RawJSON | str:
    """Text that may be JSON, as ``send_event(..., json_encode=False)`` gets
    it: JSON text is sent as that JSON value, anything else as a JSON string
    (the relay carries JSON values only), as the Valkey bridge does."""
    try:
        json.loads(text, parse_constant=_refuse_constant)
    except ValueError:
        return text
    return RawJSON(text)


def _encode_data(data: Any, encoder: type[json.JSONEncoder] | None) -> str:
    if isinstance(data, RawJSON):
        try:
            json.loads(data.text, parse_constant=_refuse_constant)
        except ValueError as err:
            raise InvalidBody(f"data: RawJSON text is not JSON ({err})") from None
        return _minify(data.text)
    try:
        return json.dumps(
            data,
            cls=encoder,
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        )
    except (TypeError, ValueError, RecursionError) as err:
        raise InvalidBody(f"data: not encodable as JSON ({err})") from None


def _refuse_constant(name: str) -> Any:
    # Python reads NaN and Infinity, JSON has neither.
    raise ValueError(f"{name} is not JSON")


def _minify(text: str) -> str:
    """Drops the whitespace between tokens of valid JSON, exactly what the
    relay drops, so the size checked here is the size it measures."""
    out = []
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in " \t\n\r":
            continue
        out.append(c)
    return "".join(out)


def _is_event_type(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_EVENT_TYPE_CHARS
        and not value.startswith(_RESERVED_EVENT_PREFIX)
        and all(c in _EVENT_TYPE_CHARS for c in value)
    )


def _is_idempotency_key(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_IDEMPOTENCY_KEY_CHARS
        and all("!" <= c <= "~" for c in value)
    )
