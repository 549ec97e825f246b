"""The publish rules (core/src/message.rs), checked before sending, and the
encoding that retries repeat byte for byte."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from edgestream import Event, EventTooLarge, InvalidBody, InvalidChannel, RawJSON
from edgestream.events import batch_body, data_from_text, prepare

C = "scan-progress:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19:42"

GOOD_TYPES = [
    "scan.progress",
    "a",
    "A-Z_0.9",
    "e" * 64,
    "stream",
    "streams-x",
    "Stream-open",
    "message",
]
BAD_TYPES = ["", "stream-open", "stream-error", "stream-", "a b", "a\nid: 1", "a:b", "é", "e" * 65]
GOOD_KEYS = ["~!x" * 42 + "ab", "k", "scan-42:step-17"]
BAD_KEYS = ["", "a b", "a\n", "é", "k" * 129, 1]


def sent(event: Event, **options: object) -> dict[str, object]:
    prepared = prepare(event, **options)  # type: ignore[arg-type]
    return json.loads(prepared.json)


@pytest.mark.parametrize("kind", GOOD_TYPES)
def test_event_types_the_relay_takes(kind: str) -> None:
    assert sent(Event(C, kind, 1))["event"] == kind


@pytest.mark.parametrize("kind", BAD_TYPES)
def test_event_types_the_relay_refuses(kind: str) -> None:
    with pytest.raises(InvalidBody) as err:
        prepare(Event(C, kind, 1))
    assert err.value.detail.startswith("event: must be 1-64 characters")
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_idempotency_keys_the_relay_takes(key: str) -> None:
    assert sent(Event(C, "e", 1, key))["idempotency_key"] == key


@pytest.mark.parametrize("key", BAD_KEYS)
def test_idempotency_keys_the_relay_refuses(key: str) -> None:
    with pytest.raises(InvalidBody):
        prepare(Event(C, "e", 1, key))  # type: ignore[arg-type]


def test_a_bad_channel_is_refused_before_anything_else() -> None:
    with pytest.raises(InvalidChannel):
        prepare(Event("nope", "stream-open", float("nan")))


def test_every_event_gets_a_key_that_stays_with_it() -> None:
    first, second = prepare(Event(C, "e", 1)), prepare(Event(C, "e", 1))
    assert first.idempotency_key != second.idempotency_key
    assert 0 < len(first.idempotency_key) <= 128
    assert json.loads(first.json)["idempotency_key"] == first.idempotency_key
    body = json.loads(batch_body([first, second]))
    assert [e["idempotency_key"] for e in body["events"]] == [
        first.idempotency_key,
        second.idempotency_key,
    ]


def test_data_is_compact_json_and_unicode_stays_unicode() -> None:
    prepared = prepare(Event(C, "e", {"pct": 42, "note": 'café "quoted"', "items": [1, 2.5, None]}))
    assert '"data":{"pct":42,"note":"café \\"quoted\\"","items":[1,2.5,null]}' in prepared.json


def test_raw_json_keeps_the_publishers_text_without_whitespace() -> None:
    data = sent(Event(C, "e", RawJSON('{"b": 1, "a": [1.50, 2e3], "s": "x y"}')))
    assert json.dumps(data["data"]) == '{"b": 1, "a": [1.5, 2000.0], "s": "x y"}'
    prepared = prepare(Event(C, "e", RawJSON('{"b": 1, "a": [1.50, 2e3], "s": "x y"}')))
    assert '"data":{"b":1,"a":[1.50,2e3],"s":"x y"}' in prepared.json


@pytest.mark.parametrize(
    "data", [float("nan"), float("inf"), {1j}, object(), RawJSON("{nope"), RawJSON("NaN")]
)
def test_data_that_is_not_json_is_refused(data: object) -> None:
    with pytest.raises(InvalidBody):
        prepare(Event(C, "e", data))


def test_a_custom_encoder_is_used() -> None:
    class Encoder(json.JSONEncoder):
        def default(self, o: object) -> object:
            return str(o) if isinstance(o, Decimal) else super().default(o)

    assert sent(Event(C, "e", Decimal("1.10")), encoder=Encoder)["data"] == "1.10"


def test_size_is_measured_on_compact_data_in_utf8_bytes() -> None:
    assert sent(Event(C, "e", RawJSON("[ 1, 2, 3, 4, 5, 6, 7 ]")), max_event_bytes=16)[
        "data"
    ] == list(range(1, 8))
    with pytest.raises(EventTooLarge) as err:
        prepare(Event(C, "e", "x" * 15), max_event_bytes=16)
    assert (err.value.status, err.value.code) == (413, "event_too_large")
    assert sent(Event(C, "e", "é" * 7), max_event_bytes=16)
    with pytest.raises(EventTooLarge):
        prepare(Event(C, "e", "é" * 8), max_event_bytes=16)


def test_text_from_send_event_without_json_encode() -> None:
    assert data_from_text('{"a": 1}') == RawJSON('{"a": 1}')
    assert data_from_text("42") == RawJSON("42")
    assert data_from_text("50% done") == "50% done"
    assert data_from_text("NaN") == "NaN"
    assert data_from_text("") == ""
