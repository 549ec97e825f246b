"""An HTTP proxy between the package and the relay that fails on cue, the
way a network, a load balancer or an overloaded relay fails, while the
relay behind it stays real.

Each request takes the next action from ``script`` (``PASS`` once it runs
out) and is recorded with its body, so a test can check what a retry sent:

- ``PASS``: forward to the relay and hand its answer back;
- ``DROP``: forward (the relay stores what it got), then close the
  connection without answering: the answer is lost on the way back;
- ``STALL``: forward, then answer nothing for ``stall_seconds``;
- ``CLOSE_AFTER``: forward, answer, then close the connection although it
  was kept alive, as an idle timeout does;
- ``answer(status, code, retry_after)``: answer a problem without forwarding
  (``overloaded``, ``quota_exceeded``, a 5xx); ``answer(202, body=...)``
  answers a success with any body.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PASS = "pass"
DROP = "drop"
STALL = "stall"
CLOSE_AFTER = "close-after"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    retry_after: str | None


def answer(
    status: int, code: str = "", retry_after: str | None = None, body: bytes | None = None
) -> Answer:
    if body is None:
        body = json.dumps(
            {
                "type": f"urn:edgestream:problem:{code}",
                "title": code,
                "status": status,
                "detail": "injected by the test",
                "code": code,
            }
        ).encode()
    return Answer(status, body, retry_after)


@dataclass(frozen=True)
class Seen:
    path: str
    body: bytes
    action: object

    def events(self) -> list[dict[str, object]]:
        return json.loads(self.body)["events"]


class FaultProxy:
    def __init__(self, upstream: str, stall_seconds: float = 2.0) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname, parts.port)
        self.stall_seconds = stall_seconds
        self.script: deque[object] = deque()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with proxy._lock:
                    action = proxy.script.popleft() if proxy.script else PASS
                    proxy.seen.append(Seen(self.path, body, action))
                if isinstance(action, Answer):
                    self._reply(action.status, action.body, action.retry_after)
                    return
                status, reply, retry_after = proxy._forward(self.path, self.headers, body)
                if action == DROP:
                    self.close_connection = True
                    return
                if action == STALL:
                    time.sleep(proxy.stall_seconds)
                    self.close_connection = True
                    return
                self._reply(status, reply, retry_after)
                if action == CLOSE_AFTER:
                    self.close_connection = True

            def _reply(self, status: int, body: bytes, retry_after: str | None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def _forward(self, path: str, headers: object, body: bytes) -> tuple[int, bytes, str | None]:
        conn = http.client.HTTPConnection(*self._upstream, timeout=10)
        try:
            forwarded = {k: headers[k] for k in ("Authorization", "Content-Type") if headers[k]}  # type: ignore[index]
            conn.request("POST", path, body=body, headers=forwarded)
            response = conn.getresponse()
            return response.status, response.read(), response.getheader("Retry-After")
        finally:
            conn.close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def publish_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/v1/publish"]

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
