"""Publishing to the relay in workerd: results, order, idempotency, one
exception per refusal, and retries that never duplicate, shown by a real
SSE stream that must receive each event exactly once, in order."""

from __future__ import annotations

import json
import time

import pytest
from fault_proxy import CLOSE_AFTER, DROP, STALL, FaultProxy, answer
from relay_env import Relay
from sse_reader import Stream

from edgestream import (
    BatchTooLarge,
    ChannelForbidden,
    Event,
    EventTooLarge,
    InsufficientScope,
    InternalError,
    InvalidChannel,
    InvalidToken,
    Overloaded,
    Problem,
    Publisher,
    QuotaExceeded,
    RelayUnreachable,
    RetryPolicy,
    TenantMissing,
)

FAST = RetryPolicy(attempts=4, initial_delay=0.05, max_delay=0.2)


def publisher(relay: Relay, url: str | None = None, **options: object) -> Publisher:
    options.setdefault("retry", FAST)
    return Publisher(url or relay.url, api_key=relay.api_key, **options)  # type: ignore[arg-type]


def stream(relay: Relay, *channels: str) -> Stream:
    s = Stream(relay.url, list(channels), token=relay.subscriber_token())
    assert s.status == 200, s.problem
    return s


def test_one_event_reaches_the_stream(relay: Relay, channel: str) -> None:
    with stream(relay, channel) as s, publisher(relay) as pub:
        result = pub.publish(channel, "scan.progress", {"pct": 42, "note": "café"})
        assert (result.channel, result.id, result.duplicate) == (channel, 1, False)
        [event] = s.wait_for(1)
    assert (event.type, event.json()) == ("scan.progress", {"pct": 42, "note": "café"})
    assert event.id.endswith(":1")


def test_a_batch_keeps_its_order_per_channel(relay: Relay) -> None:
    a, b = relay.channel(), relay.channel()
    events = [Event(a if i % 3 else b, "step", i) for i in range(30)]
    with stream(relay, a) as sa, stream(relay, b) as sb, publisher(relay) as pub:
        results = pub.publish_batch(events)
        got_a, got_b = sa.wait_for(20), sb.wait_for(10)
    assert [r.channel for r in results] == [e.channel for e in events]
    assert [r.id for r in results if r.channel == a] == list(range(1, 21))
    assert [r.id for r in results if r.channel == b] == list(range(1, 11))
    assert [e.json() for e in got_a] == [i for i in range(30) if i % 3], "each once, in order"
    assert [e.json() for e in got_b] == [i for i in range(30) if not i % 3]


def test_a_repeated_key_is_stored_once(relay: Relay, channel: str) -> None:
    with stream(relay, channel) as s, publisher(relay) as pub:
        first = pub.publish(channel, "e", 1, idempotency_key="step-1")
        again = pub.publish(channel, "e", 2, idempotency_key="step-1")
        other = pub.publish(channel, "e", 3)
        got = s.wait_for(2)
    assert (first.id, first.duplicate, again.id, again.duplicate) == (1, False, 1, True)
    assert (other.id, other.duplicate) == (2, False)
    assert [e.json() for e in got] == [1, 3]


def test_batches_hold_1_to_100_events(relay: Relay, channel: str, proxy: FaultProxy) -> None:
    with publisher(relay, proxy.url) as pub:
        assert len(pub.publish_batch([Event(channel, "e", i) for i in range(100)])) == 100
        for size in (0, 101):
            with pytest.raises(BatchTooLarge):
                pub.publish_batch([Event(channel, "e", i) for i in range(size)])
    assert len(proxy.publish_requests()) == 1


def test_a_batch_with_one_bad_event_sends_nothing(
    relay: Relay, channel: str, proxy: FaultProxy
) -> None:
    with publisher(relay, proxy.url) as pub, pytest.raises(InvalidChannel):
        pub.publish_batch([Event(channel, "e", 1), Event(channel.upper(), "e", 2)])
    assert proxy.seen == []


def test_refusals_raise_their_class(relay: Relay, channel: str, other_tenant: str) -> None:
    with pytest.raises(InvalidToken) as err:
        Publisher(relay.url, api_key="es_unknown", retry=FAST).publish(channel, "e", 1)
    assert err.value.status == 401
    with pytest.raises(InsufficientScope):
        Publisher(relay.url, api_key=relay.no_scope_key, retry=FAST).publish(channel, "e", 1)
    with pytest.raises(InvalidToken):
        Publisher(relay.url, token="not-a-jwt", retry=FAST).publish(channel, "e", 1)
    with pytest.raises(ChannelForbidden) as forbidden:
        publisher(relay).publish(relay.channel(other_tenant), "e", 1)
    assert forbidden.value.detail.startswith("the token's tenant may not access channel")


def test_the_relay_has_the_last_word_on_size(relay: Relay, channel: str, proxy: FaultProxy) -> None:
    """A publisher that believes in a larger MAX_EVENT_BYTES than the relay's
    gets the relay's 413 as the same exception, without a retry."""
    with pytest.raises(EventTooLarge) as err:
        publisher(relay, proxy.url, max_event_bytes=10**6).publish(channel, "e", "x" * 70_000)
    assert (err.value.status, len(proxy.seen)) == (413, 1)


def test_a_platform_key_publishes_to_any_tenant(relay: Relay, other_tenant: str) -> None:
    channel = relay.channel(other_tenant)
    result = Publisher(relay.url, api_key=relay.platform_key).publish(channel, "e", {"ok": True})
    assert (result.id, result.duplicate) == (1, False)


def test_a_token_function_is_asked_for_every_attempt(
    relay: Relay, channel: str, proxy: FaultProxy
) -> None:
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        return relay.subscriber_token(scope="events:publish")

    proxy.script.extend([answer(503, "unavailable")])
    result = Publisher(proxy.url, token=token, retry=FAST).publish(channel, "e", 1)
    assert (result.id, len(calls), len(proxy.seen)) == (1, 2, 2)


def test_a_lost_answer_is_retried_without_a_duplicate(relay: Relay, proxy: FaultProxy) -> None:
    a, b = relay.channel(), relay.channel()
    events = [Event(a if i % 2 else b, "step", i) for i in range(10)]
    proxy.script.extend([DROP, DROP])
    with stream(relay, a) as sa, stream(relay, b) as sb, publisher(relay, proxy.url) as pub:
        results = pub.publish_batch(events)
        got_a, got_b = sa.wait_for(5), sb.wait_for(5)
    assert all(r.duplicate for r in results), "the relay had stored the first attempt"
    assert [r.id for r in results] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [e.json() for e in got_a] == [1, 3, 5, 7, 9]
    assert [e.json() for e in got_b] == [0, 2, 4, 6, 8]
    bodies = {s.body for s in proxy.publish_requests()}
    assert len(proxy.publish_requests()) == 3 and len(bodies) == 1, (
        "every attempt sent the same keys"
    )


def test_a_timeout_is_retried_without_a_duplicate(
    relay: Relay, channel: str, proxy: FaultProxy
) -> None:
    proxy.stall_seconds = 1.5
    proxy.script.append(STALL)
    with stream(relay, channel) as s, publisher(relay, proxy.url, timeout=0.5) as pub:
        result = pub.publish(channel, "e", "once")
        assert [e.json() for e in s.wait_for(1)] == ["once"]
    assert (result.id, result.duplicate, len(proxy.seen)) == (1, True, 2)


def test_overloaded_waits_for_retry_after(relay: Relay, channel: str, proxy: FaultProxy) -> None:
    proxy.script.extend([answer(503, "overloaded", retry_after="1")])
    started = time.monotonic()
    result = publisher(relay, proxy.url).publish(channel, "e", 1)
    elapsed = time.monotonic() - started
    assert (result.id, result.duplicate, len(proxy.seen)) == (1, False, 2)
    assert 1.0 <= elapsed < 4.0, elapsed


def test_quota_exceeded_is_retried(relay: Relay, channel: str, proxy: FaultProxy) -> None:
    proxy.script.extend([answer(429, "quota_exceeded", retry_after="0")] * 2)
    result = publisher(relay, proxy.url).publish(channel, "e", 1)
    assert (result.id, len(proxy.seen)) == (1, 3)


def test_a_retry_after_beyond_the_bound_is_reported_not_waited(
    relay: Relay, channel: str, proxy: FaultProxy
) -> None:
    proxy.script.extend([answer(429, "quota_exceeded", retry_after="3600")])
    started = time.monotonic()
    with pytest.raises(QuotaExceeded) as err:
        publisher(relay, proxy.url).publish(channel, "e", 1)
    assert (err.value.retry_after, len(proxy.seen)) == (3600.0, 1)
    assert time.monotonic() - started < 2.0


def test_retries_run_out(relay: Relay, channel: str, proxy: FaultProxy) -> None:
    proxy.script.extend([answer(500, "internal")] * 4)
    with pytest.raises(InternalError):
        publisher(relay, proxy.url).publish(channel, "e", 1)
    assert len(proxy.seen) == FAST.attempts
    proxy.script.extend([answer(503, "overloaded", retry_after="0")] * 4)
    with pytest.raises(Overloaded):
        publisher(relay, proxy.url).publish(channel, "e", 1)


def test_a_4xx_is_never_retried(relay: Relay, channel: str, proxy: FaultProxy) -> None:
    proxy.script.extend([answer(403, "tenant_missing"), answer(408, "")])
    with pytest.raises(TenantMissing):
        publisher(relay, proxy.url).publish(channel, "e", 1)
    with pytest.raises(Problem) as err:
        publisher(relay, proxy.url).publish(channel, "e", 1)
    assert (err.value.status, err.value.code, err.value.retryable) == (408, "http_408", False)
    assert len(proxy.seen) == 2


def test_a_success_that_says_nothing_is_retried(
    relay: Relay, channel: str, proxy: FaultProxy
) -> None:
    proxy.script.extend([answer(202, body=b"{}"), answer(202, body=b"<html>")])
    result = publisher(relay, proxy.url).publish(channel, "e", 1)
    assert (result.id, result.duplicate, len(proxy.seen)) == (1, False, 3)


def test_an_unreachable_relay(relay: Relay, channel: str) -> None:
    proxy = FaultProxy(relay.url)
    with proxy:
        url = proxy.url
    with pytest.raises(RelayUnreachable) as err:
        publisher(relay, url).publish(channel, "e", 1)
    assert err.value.attempts == FAST.attempts
    assert "ConnectionRefusedError" in str(err.value)


def test_a_connection_closed_while_idle_is_not_a_failure(
    relay: Relay, channel: str, proxy: FaultProxy
) -> None:
    """With no retries at all, publishes still go through when the other end
    closes every kept-alive connection after its answer."""
    proxy.script.extend([CLOSE_AFTER] * 3)
    with publisher(relay, proxy.url, retry=RetryPolicy(attempts=1)) as pub:
        assert [pub.publish(channel, "e", i).id for i in range(3)] == [1, 2, 3]


def test_connections_are_kept_alive(relay: Relay, channel: str) -> None:
    with publisher(relay) as pub:
        pub.publish(channel, "e", 0)
        started = time.perf_counter()
        for i in range(50):
            pub.publish(channel, "e", i)
        per_publish = (time.perf_counter() - started) / 50
        assert len(pub._transport._idle) == 1
    print(f"sequential publish: {per_publish * 1000:.1f} ms")


def test_urls_and_credentials(relay: Relay) -> None:
    for bad in [
        "ftp://relay.example.com",
        "http://relay.example.com",
        "http://10.0.0.1:8787",
        "https://user:pw@relay.example.com",
        "https://relay.example.com/?x=1",
        "relay.example.com",
    ]:
        with pytest.raises(ValueError):
            Publisher(bad, api_key="k")
    for ok in [
        "http://127.0.0.1:8787",
        "http://localhost",
        "http://[::1]:8787",
        "https://relay.example.com/base/",
    ]:
        Publisher(ok, api_key="k")
    for bad_credential in [
        dict(),
        dict(api_key="k", token="t"),
        dict(api_key="a b"),
        dict(api_key="k\r\nX: y"),
        dict(token=""),
    ]:
        with pytest.raises(ValueError):
            Publisher(relay.url, **bad_credential)  # type: ignore[arg-type]
    pub = Publisher(relay.url, api_key=relay.api_key)
    assert relay.api_key not in repr(pub) + repr(pub._transport._credential)


def test_data_is_delivered_as_written(relay: Relay, channel: str) -> None:
    from edgestream import RawJSON

    with stream(relay, channel) as s, publisher(relay) as pub:
        pub.publish(channel, "e", RawJSON('{"z": 1, "a": 1.50}'))
        pub.publish(channel, "e", None)
        pub.publish(channel, "e", "multi\nline")
        got = s.wait_for(3)
    assert [e.data for e in got] == ['{"z":1,"a":1.50}', "null", json.dumps("multi\nline")]
