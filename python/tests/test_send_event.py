"""send_event() as django-eventstream has it, over HTTP: same arguments,
same data at the browser, errors where they belong."""

from __future__ import annotations

import datetime
import inspect
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import django_eventstream
import pytest
from django.test import override_settings
from fault_proxy import FaultProxy, answer
from relay_env import Relay
from sse_reader import Stream

import edgestream
from edgestream import (
    ChannelForbidden,
    EventTooLarge,
    InvalidBody,
    InvalidChannel,
    RetryPolicy,
    send_event,
)


@pytest.fixture
def configured(relay: Relay) -> Iterator[edgestream.Publisher]:
    publisher = edgestream.configure(
        relay.url, api_key=relay.api_key, retry=RetryPolicy(attempts=2)
    )
    yield publisher
    assert edgestream.get_background_publisher().flush(10)


def stream(relay: Relay, channel: str) -> Stream:
    s = Stream(relay.url, [channel], token=relay.subscriber_token())
    assert s.status == 200, s.problem
    return s


def test_the_signature_is_django_eventstreams() -> None:
    ours = inspect.signature(send_event).parameters
    theirs = inspect.signature(django_eventstream.send_event).parameters
    assert [(p.name, p.default, p.kind) for p in ours.values()] == [
        (p.name, p.default, p.kind) for p in theirs.values()
    ]


def test_calls_as_django_eventstream_takes_them(
    relay: Relay, channel: str, configured: object
) -> None:
    when = datetime.datetime(2026, 12, 2, 17, 36, 1, 123456, tzinfo=datetime.timezone.utc)
    tenant = uuid.UUID(relay.tenant)
    with stream(relay, channel) as s:
        send_event(channel, "scan.progress", {"pct": 42, "stage": "scan", "items": [1, 2.5, None]})
        send_event(channel, "scan.note", '{"b": 1, "a": [1.50, 2]}', json_encode=False)
        send_event(channel, "scan.note", "50% done", json_encode=False)
        send_event(channel, "scan.at", {"when": when, "cost": Decimal("1.10"), "tenant": tenant})
        send_event(channel, "message", "plain", skip_user_ids=[1, 2])
        send_event(channel, "scan.completed", {"ok": True}, async_publish=False)
        got = s.wait_for(6)
    assert [(e.type, e.data) for e in got] == [
        ("scan.progress", '{"pct":42,"stage":"scan","items":[1,2.5,null]}'),
        ("scan.note", '{"b":1,"a":[1.50,2]}'),
        ("scan.note", '"50% done"'),
        (
            "scan.at",
            json.dumps(
                {"when": "2026-12-02T17:36:01.123Z", "cost": "1.10", "tenant": str(tenant)},
                separators=(",", ":"),
            ),
        ),
        ("message", '"plain"'),
        ("scan.completed", '{"ok":true}'),
    ]


def test_bad_events_raise_in_the_caller_either_way(
    relay: Relay, channel: str, configured: object
) -> None:
    for async_publish in (True, False):
        with pytest.raises(InvalidChannel):
            send_event(f"scan:{relay.tenant.upper()}:1", "e", 1, async_publish=async_publish)
        with pytest.raises(ValueError):
            send_event(channel, "stream-open", 1, async_publish=async_publish)
        with pytest.raises(EventTooLarge):
            send_event(channel, "e", "x" * 70_000, async_publish=async_publish)
        with pytest.raises(InvalidBody):
            send_event(channel, "e", object(), async_publish=async_publish)
    assert edgestream.get_background_publisher().pending == 0


def test_refusals_raise_only_when_synchronous(
    relay: Relay, other_tenant: str, configured: object
) -> None:
    theirs = relay.channel(other_tenant)
    with pytest.raises(ChannelForbidden):
        send_event(theirs, "e", 1, async_publish=False)
    failures: list[Exception] = []
    edgestream.configure(
        relay.url, api_key=relay.api_key, on_error=lambda err, events: failures.append(err)
    )
    send_event(theirs, "e", 1)
    assert edgestream.get_background_publisher().flush(10)
    assert [type(f) for f in failures] == [ChannelForbidden]


def test_the_relay_is_found_in_settings_or_the_environment(
    relay: Relay, channel: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    with override_settings(EDGESTREAM_URL=proxy.url, EDGESTREAM_API_KEY=relay.api_key):
        publisher = edgestream.configure()
        assert publisher.url == proxy.url
        send_event(channel, "e", 1, async_publish=False)
    monkeypatch.setenv("EDGESTREAM_TOKEN", relay.subscriber_token(scope="events:publish"))
    with override_settings(EDGESTREAM_URL=proxy.url, EDGESTREAM_MAX_EVENT_BYTES=8):
        edgestream.configure()
        send_event(channel, "e", 2, async_publish=False)
        with pytest.raises(EventTooLarge):
            send_event(channel, "e", "123456789", async_publish=False)
    auth = [s for s in proxy.publish_requests()]
    assert len(auth) == 2
    with override_settings(EDGESTREAM_URL=None):
        monkeypatch.delenv("EDGESTREAM_URL", raising=False)
        with pytest.raises(ValueError, match="EDGESTREAM_URL"):
            edgestream.configure()
    edgestream.configure(relay.url, api_key=relay.api_key)


def test_reconfiguring_flushes_what_was_queued(
    relay: Relay, channel: str, proxy: FaultProxy
) -> None:
    edgestream.configure(
        proxy.url, api_key=relay.api_key, retry=RetryPolicy(attempts=3, initial_delay=0.05)
    )
    proxy.script.append(answer(503, "overloaded", retry_after="0"))
    send_event(channel, "e", "queued before")
    edgestream.configure(relay.url, api_key=relay.api_key)
    send_event(channel, "e", "queued after", async_publish=False)
    with stream(relay, channel) as s:
        assert [e.json() for e in s.wait_for(2)] == ["queued before", "queued after"]


def test_a_synchronous_call_waits_for_what_was_queued_before_it(
    relay: Relay, channel: str, proxy: FaultProxy
) -> None:
    edgestream.configure(
        proxy.url,
        api_key=relay.api_key,
        sync_wait=0.2,
        retry=RetryPolicy(attempts=2, initial_delay=0.02, max_delay=0.05),
    )
    proxy.script.extend([answer(503, "overloaded", retry_after="0")] * 12)
    send_event(channel, "e", "queued")
    with pytest.raises(edgestream.RelayUnreachable, match="not sent"):
        send_event(channel, "e", "not sent", async_publish=False)
    assert edgestream.get_background_publisher().flush(10)
    send_event(channel, "e", "sent", async_publish=False)
    with stream(relay, channel) as s:
        assert [e.json() for e in s.wait_for(2)] == ["queued", "sent"]
    edgestream.configure(relay.url, api_key=relay.api_key)
