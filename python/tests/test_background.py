"""The background queue: batches, order, retries through failures, and
nothing lost or duplicated on the way, as a real stream sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fault_proxy import DROP, FaultProxy, answer
from relay_env import Relay
from sse_reader import Stream

from edgestream import (
    BackgroundPublisher,
    ChannelForbidden,
    EdgestreamError,
    Event,
    InvalidChannel,
    Publisher,
    QueueFull,
    RelayUnreachable,
    RetryPolicy,
)
from edgestream.events import PreparedEvent

FAST = RetryPolicy(attempts=2, initial_delay=0.02, max_delay=0.1)


class Failures:
    """An on_error handler that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[Exception, list[PreparedEvent]]] = []
        self._lock = threading.Lock()

    def __call__(self, error: Exception, events: list[PreparedEvent]) -> None:
        with self._lock:
            self.calls.append((error, events))


def background(relay: Relay, url: str, **options: object) -> BackgroundPublisher:
    return BackgroundPublisher(Publisher(url, api_key=relay.api_key, retry=FAST), **options)  # type: ignore[arg-type]


def stream(relay: Relay, channel: str) -> Stream:
    s = Stream(relay.url, [channel], token=relay.subscriber_token())
    assert s.status == 200, s.problem
    return s


def test_a_burst_goes_out_in_few_batches_in_order(relay: Relay, proxy: FaultProxy) -> None:
    a, b = relay.channel(), relay.channel()
    bg = background(relay, proxy.url)
    with stream(relay, a) as sa, stream(relay, b) as sb:
        for i in range(500):
            bg.submit(Event(a if i % 2 else b, "step", i))
        assert bg.flush(10)
        got_a, got_b = sa.wait_for(250), sb.wait_for(250)
    assert [e.json() for e in got_a] == list(range(1, 500, 2))
    assert [e.json() for e in got_b] == list(range(0, 500, 2))
    sizes = [len(s.events()) for s in proxy.publish_requests()]
    print(f"500 events in {len(sizes)} requests: {sizes}")
    assert sum(sizes) == 500 and max(sizes) <= 100
    assert len(sizes) <= 25, sizes
    assert (bg.sent, bg.failed, bg.pending) == (500, 0, 0)
    assert bg.close(1)


def test_failures_on_the_way_lose_and_duplicate_nothing(relay: Relay, proxy: FaultProxy) -> None:
    channel = relay.channel()
    bg = background(relay, proxy.url)
    # More failures in a row than the publisher retries: the queue keeps the
    # batch and its place until the relay takes it.
    proxy.script.extend(
        [
            DROP,
            answer(503, "overloaded", retry_after="0"),
            answer(502, ""),
            DROP,
            answer(429, "quota_exceeded", retry_after="0"),
            DROP,
        ]
    )
    with stream(relay, channel) as s:
        for i in range(300):
            bg.submit(Event(channel, "step", i))
            if i % 50 == 0:
                time.sleep(0.02)
        assert bg.flush(20)
        got = s.wait_for(300)
    assert [e.json() for e in got] == list(range(300))
    assert [e.id.rsplit(":", 1)[1] for e in got] == [str(i) for i in range(1, 301)]
    assert (bg.sent, bg.failed) == (300, 0)
    assert len(proxy.publish_requests()) > 6


def test_a_refused_event_fails_alone(relay: Relay, other_tenant: str, proxy: FaultProxy) -> None:
    mine, theirs = relay.channel(), relay.channel(other_tenant)
    failures = Failures()
    bg = background(relay, proxy.url, on_error=failures)
    proxy.script.append(answer(503, "overloaded", retry_after="0"))
    with stream(relay, mine) as s:
        bg.submit(Event(mine, "step", 0))
        for i in range(1, 6):
            bg.submit(Event(theirs if i == 3 else mine, "step", i))
        assert bg.flush(10)
        got = s.wait_for(5)
    assert [e.json() for e in got] == [0, 1, 2, 4, 5]
    [(error, events)] = failures.calls
    assert isinstance(error, ChannelForbidden)
    assert [e.channel for e in events] == [theirs]
    assert (bg.sent, bg.failed) == (5, 1)


def test_bad_events_raise_in_the_caller(relay: Relay, proxy: FaultProxy) -> None:
    bg = background(relay, proxy.url)
    with pytest.raises(InvalidChannel):
        bg.submit(Event("not-a-channel", "e", 1))
    assert bg.pending == 0 and proxy.seen == []


def test_a_full_queue_pushes_back(relay: Relay, channel: str, proxy: FaultProxy) -> None:
    failures = Failures()
    bg = background(relay, proxy.url, max_queue=3, put_timeout=0.1, on_error=failures)
    proxy.script.extend([answer(503, "overloaded", retry_after="0")] * 1000)
    for i in range(3):
        bg.submit(Event(channel, "e", i))
    started = time.monotonic()
    with pytest.raises(QueueFull):
        bg.submit(Event(channel, "e", 3))
    assert 0.1 <= time.monotonic() - started < 2.0
    # Closing gives up on the relay after 0.3 s: whatever is left then is
    # reported, not dropped silently.
    bg.close(0.3)
    with pytest.raises(EdgestreamError):
        bg.submit(Event(channel, "e", 4))
    deadline = time.monotonic() + 2
    while sum(len(events) for _, events in failures.calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(json.loads(e.json)["data"] for _, events in failures.calls for e in events) == [
        0,
        1,
        2,
    ]
    assert all(
        isinstance(error, (RelayUnreachable, EdgestreamError)) for error, _ in failures.calls
    )
    assert (bg.sent, bg.failed, bg.pending) == (0, 3, 0)


def test_events_queued_at_exit_are_sent(relay: Relay, channel: str) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / "src")!r})
        import edgestream
        edgestream.configure({relay.url!r}, api_key={relay.api_key!r})
        for i in range(20):
            edgestream.send_event({channel!r}, "step", {{"i": i}})
        """
    )
    with stream(relay, channel) as s:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        subprocess.run([sys.executable, "-c", script], check=True, timeout=30, env=env)
        got = s.wait_for(20)
    assert [e.json()["i"] for e in got] == list(range(20))


def test_a_forked_child_starts_empty(relay: Relay, channel: str, proxy: FaultProxy) -> None:
    bg = background(relay, proxy.url)
    proxy.script.extend([answer(503, "overloaded", retry_after="0")] * 5)
    bg.submit(Event(channel, "e", "parent"))
    pid = os.fork()
    if pid == 0:
        ok = bg.pending == 0
        bg.submit(Event(channel, "e", "child"))
        ok = ok and bg.flush(10) and bg.sent == 1
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert bg.flush(10)
    with stream(relay, channel) as s:
        assert sorted(e.json() for e in s.wait_for(2)) == ["child", "parent"]
