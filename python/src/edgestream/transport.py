"""HTTP to the relay: kept-alive connections, credentials, retries.

Only the standard library's ``http.client``: no dependency to install, and
connections are reused, which ``urllib`` cannot do. Connections are pooled
per transport and each request takes one for itself, so threads publishing
at once do not wait for each other.

A reused connection the relay (or a proxy) has closed while it sat idle
fails on its first write or read, reset or closed. That attempt is repeated
at once on a fresh connection and does not count as a retry; any other
failure is
retried after the :class:`~edgestream.retry.RetryPolicy`'s wait. Both are
safe only because what goes through here is safe to repeat: publishes carry
idempotency keys, and an unused ticket expires by itself.

Plain ``http://`` is accepted only for a loopback host, so a credential never
crosses a network in clear text.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from .errors import Problem, RelayUnreachable, problem_from_response
from .retry import RetryPolicy, parse_retry_after

__all__ = ["Credential", "Transport"]

T = TypeVar("T")
_log = logging.getLogger("edgestream")
_IDLE_CONNECTIONS = 8
_MAX_ANSWER_BYTES = 1 << 20


class MalformedAnswer(Exception):
    """A success status with a body that does not say what it should. The
    request may have been carried out, so it is retried like a failure."""


@dataclass(frozen=True)
class Credential:
    """What goes into the ``Authorization`` header: an API key, a token, or a
    function that returns a fresh token (called once per attempt). Its
    ``repr`` never shows the secret."""

    api_key: str | None = None
    token: str | Callable[[], str] | None = None

    def __post_init__(self) -> None:
        if (self.api_key is None) == (self.token is None):
            raise ValueError("give exactly one of api_key and token")
        if self.api_key is not None:
            _check_header_value("api_key", self.api_key)
        if isinstance(self.token, str):
            _check_header_value("token", self.token)

    def header(self) -> str:
        if self.api_key is not None:
            return f"Api-Key {self.api_key}"
        token = self.token() if callable(self.token) else self.token
        _check_header_value("token", token)
        return f"Bearer {token}"

    def __repr__(self) -> str:
        return "Credential(api_key=...)" if self.api_key is not None else "Credential(token=...)"


def _check_header_value(what: str, value: object) -> None:
    if not isinstance(value, str) or not value or not all("!" <= c <= "~" for c in value):
        raise ValueError(f"{what} must be a non-empty string of visible ASCII characters")


@dataclass(frozen=True)
class _Answer:
    status: int
    retry_after: float | None
    body: bytes


class Transport:
    """Requests to one relay with one credential."""

    def __init__(
        self,
        url: str,
        credential: Credential,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "edgestream-python",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the relay URL must be http(s)://host[:port][/path]")
        if parts.username is not None or parts.query or parts.fragment:
            raise ValueError("the relay URL must not carry credentials, a query or a fragment")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("plain http:// is accepted only for a loopback host; use https://")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port
        self._base_path = parts.path.rstrip("/")
        self._credential = credential
        self._timeout = timeout
        self.retry = retry or RetryPolicy()
        self._ssl_context = (
            (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        )
        self._user_agent = user_agent
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Transport({self.url!r})"

    def call(self, path: str, body: bytes, expect: int, read: Callable[[bytes], T]) -> T:
        """POSTs ``body`` until the relay answers ``expect`` and ``read``
        accepts the answer, a retry is not allowed, or the retries run out.

        Raises:
            Problem: (its subclass for the code) the relay refused the
                request, or kept refusing it with a retryable status.
            RelayUnreachable: no attempt got an answer.
        """
        retry = 0
        while True:
            retry_after: float | None = None
            try:
                answer = self._exchange(path, body)
            except (OSError, http.client.HTTPException) as err:
                failure: Exception = RelayUnreachable(
                    f"the relay did not answer: {_describe(err)}", attempts=retry + 1
                )
                failure.__cause__ = err
            else:
                if answer.status == expect:
                    try:
                        return read(answer.body)
                    except MalformedAnswer as err:
                        failure = RelayUnreachable(
                            f"the relay's answer was malformed: {err}", attempts=retry + 1
                        )
                else:
                    failure = problem_from_response(answer.status, answer.body, answer.retry_after)
                    if not failure.retryable:
                        raise failure
                    retry_after = answer.retry_after
            retry += 1
            wait = self.retry.delay(retry, retry_after)
            if wait is None:
                raise failure
            _log.warning(
                json.dumps(
                    {
                        "message": "retrying a request to the relay",
                        "path": path,
                        "retry": retry,
                        "wait_seconds": round(wait, 3),
                        "reason": _reason(failure),
                    }
                )
            )
            time.sleep(wait)

    def close(self) -> None:
        """Closes the idle connections; the transport stays usable."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _exchange(self, path: str, body: bytes) -> _Answer:
        connection, reused = self._take()
        try:
            answer = self._send(connection, path, body)
        except (ConnectionError, http.client.BadStatusLine):
            connection.close()
            if not reused:
                raise
            # A reused connection that is reset or closed before an answer was
            # most likely closed by the other end while idle: once more, on a
            # connection of its own. (A timeout is not that, and is retried
            # after the policy's wait like any other failure.)
            connection, _ = self._take(fresh=True)
            try:
                answer = self._send(connection, path, body)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        self._give_back(connection)
        return answer

    def _send(self, connection: http.client.HTTPConnection, path: str, body: bytes) -> _Answer:
        connection.request(
            "POST",
            self._base_path + path,
            body=body,
            headers={
                "Authorization": self._credential.header(),
                "Content-Type": "application/json",
                "Accept": "application/json, application/problem+json",
                "User-Agent": self._user_agent,
            },
        )
        response = connection.getresponse()
        data = response.read(_MAX_ANSWER_BYTES + 1)
        if len(data) > _MAX_ANSWER_BYTES:
            # The rest is unread: this connection cannot carry another request.
            connection.close()
        return _Answer(
            status=response.status,
            retry_after=parse_retry_after(response.getheader("Retry-After")),
            body=data[:_MAX_ANSWER_BYTES],
        )

    def _take(self, *, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        if not fresh:
            with self._lock:
                if self._idle:
                    return self._idle.pop(), True
        if self._ssl_context is not None:
            return (
                http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._ssl_context
                ),
                False,
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout), False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        if connection.sock is None:
            return
        with self._lock:
            if len(self._idle) < _IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe(err: BaseException) -> str:
    if isinstance(err, (socket.timeout, TimeoutError)):
        return "timed out"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _reason(failure: Exception) -> str:
    if isinstance(failure, Problem):
        return f"{failure.status} {failure.code}"
    return str(failure)
