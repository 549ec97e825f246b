"""A small SSE reader for the tests: opens ``GET /v1/stream`` and records
every event (``id``, ``event``, ``data``) in a thread, as a browser's
EventSource would dispatch them."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

RELAY_EVENTS = ("stream-open", "stream-reset", "stream-error")


@dataclass(frozen=True)
class SSEEvent:
    type: str
    id: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def cursor(*channels: str) -> str:
    """The Last-Event-ID that asks for every channel from its first event."""
    return ",".join(f"{quote(c, safe='')}:0" for c in channels)


class Stream:
    """One stream, read until closed.

    With ``from_start`` the stream resumes from before each channel's first
    event, so it receives everything ever published to them, in order,
    whether it was published before the stream opened or after.
    """

    def __init__(
        self,
        base: str,
        channels: list[str],
        *,
        token: str | None = None,
        ticket: str | None = None,
        from_start: bool = True,
    ) -> None:
        query: list[tuple[str, str]] = [("channel", c) for c in channels]
        if ticket:
            query.append(("ticket", ticket))
        if from_start:
            query.append(("lastEventId", cursor(*channels)))
        parts = urlsplit(base)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._conn.request("GET", f"/v1/stream?{urlencode(query)}", headers=headers)
        response = self._conn.getresponse()
        self.status = response.status
        self.events: list[SSEEvent] = []
        self._cond = threading.Condition()
        self._done = False
        if self.status != 200:
            self.problem = json.loads(response.read())
            self._conn.close()
            return
        self.problem = None
        self._thread = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._thread.start()

    def _read(self, response: http.client.HTTPResponse) -> None:
        kind, event_id, data = "message", "", []
        last_id = ""
        try:
            while True:
                line = response.readline()
                if not line:
                    break
                text = line.decode("utf-8").rstrip("\r\n")
                if not text:
                    if data:
                        last_id = event_id or last_id
                        with self._cond:
                            self.events.append(SSEEvent(kind, last_id, "\n".join(data)))
                            self._cond.notify_all()
                    kind, event_id, data = "message", "", []
                    continue
                if text.startswith(":"):
                    continue
                field, _, value = text.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    kind = value
                elif field == "data":
                    data.append(value)
                elif field == "id":
                    event_id = value
        except Exception:
            # Closing the socket under the reader is how a stream ends here.
            pass
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def data(self) -> list[SSEEvent]:
        """The events other than the relay's own frames."""
        with self._cond:
            return [e for e in self.events if e.type not in RELAY_EVENTS]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[SSEEvent]:
        """Waits until ``count`` data events arrived, then a little longer so
        that a duplicate would show; returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([e for e in self.events if e.type not in RELAY_EVENTS]) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self._done:
                    raise AssertionError(
                        f"expected {count} events, got {[(e.type, e.data) for e in self.events]}"
                    )
                self._cond.wait(left)
        time.sleep(0.3)
        return self.data()

    def close(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._conn.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
