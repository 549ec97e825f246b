"""What can go wrong, one exception class per problem code.

The relay answers every refusal with an RFC 9457 problem document whose
``code`` is stable (``core/src/problem.rs``). Each code has a class here, so
callers catch what they mean (``except ChannelForbidden``) instead of
comparing strings, and every class derives from :class:`Problem`, which
derives from :class:`EdgestreamError`.

The package refuses bad input before sending it with the same classes the
relay would answer with: a malformed channel name raises
:class:`InvalidChannel` whether the package or the relay noticed. Those
input errors are also ``ValueError``\\ s, as the helpers they replace raised.

An error's text carries the relay's ``detail``, never a credential or event
data.
"""

from __future__ import annotations

import json

__all__ = [
    "BatchTooLarge",
    "ChannelForbidden",
    "EdgestreamError",
    "EventTooLarge",
    "InsufficientScope",
    "InternalError",
    "InvalidBody",
    "InvalidChannel",
    "InvalidCursor",
    "InvalidToken",
    "MethodNotAllowed",
    "MissingCredentials",
    "NoChannels",
    "NotFound",
    "Overloaded",
    "PlatformOnly",
    "Problem",
    "QuotaExceeded",
    "RelayUnreachable",
    "Revoked",
    "TenantMissing",
    "TooManyChannels",
    "Unavailable",
    "UnsupportedMediaType",
    "problem_from_response",
]

# The most of an answer that is not a problem document which an error quotes.
_PREVIEW_CHARS = 200


class EdgestreamError(Exception):
    """Base class of every error this package raises."""


class RelayUnreachable(EdgestreamError):
    """The relay could not be reached, or did not answer in time, on any
    attempt. The events may or may not have been stored: publishing them
    again with the same idempotency keys is safe."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class Problem(EdgestreamError):
    """The relay refused a request (or would have: see the module's doc).

    Attributes:
        status: the HTTP status.
        code: the stable problem code (``"channel_forbidden"``); for an answer
            that was not a problem document, ``"http_<status>"``.
        title: the code's fixed title, when the relay sent one.
        detail: what was wrong with this request.
        retry_after: seconds the relay asked to wait (``Retry-After``), if any.
    """

    code: str = "problem"
    status: int = 0

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.title = title
        self.detail = detail
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail}"

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later: 429 and 5xx. Any other
        4xx would fail the same way again, so it is never retried."""
        return self.status == 429 or 500 <= self.status <= 599


class MissingCredentials(Problem):
    code, status = "missing_credentials", 401


class InvalidToken(Problem):
    """A bad, expired or wrongly signed token; an unknown, expired or
    disabled API key; a used or expired ticket."""

    code, status = "invalid_token", 401


class InsufficientScope(Problem):
    """The credential lacks the scope the endpoint needs (publishing needs
    ``events:publish``)."""

    code, status = "insufficient_scope", 403


class InvalidChannel(Problem, ValueError):
    """A channel name breaks the rules (see :mod:`edgestream.channels`)."""

    code, status = "invalid_channel", 400


class ChannelForbidden(Problem):
    """A channel of another tenant than the credential's."""

    code, status = "channel_forbidden", 403


class PlatformOnly(Problem):
    code, status = "platform_only", 403


class Revoked(Problem):
    code, status = "revoked", 403


class TenantMissing(Problem):
    """The credential names no tenant and has no ``events:platform`` scope."""

    code, status = "tenant_missing", 403


class TooManyChannels(Problem, ValueError):
    code, status = "too_many_channels", 400


class NoChannels(Problem, ValueError):
    code, status = "no_channels", 400


class InvalidCursor(Problem, ValueError):
    code, status = "invalid_cursor", 400


class InvalidBody(Problem, ValueError):
    """A malformed request: an event type or idempotency key that breaks the
    rules, data that is not JSON."""

    code, status = "invalid_body", 400


class BatchTooLarge(Problem, ValueError):
    code, status = "batch_too_large", 400


class EventTooLarge(Problem, ValueError):
    """An event's data is larger than the relay's ``MAX_EVENT_BYTES``."""

    code, status = "event_too_large", 413


class UnsupportedMediaType(Problem):
    code, status = "unsupported_media_type", 415


class NotFound(Problem):
    code, status = "not_found", 404


class MethodNotAllowed(Problem):
    code, status = "method_not_allowed", 405


class QuotaExceeded(Problem):
    """Over a tenant quota; ``retry_after`` says when to come back."""

    code, status = "quota_exceeded", 429


class InternalError(Problem):
    code, status = "internal", 500


class Unavailable(Problem):
    """The relay is misconfigured or could not reach a channel."""

    code, status = "unavailable", 503


class Overloaded(Problem):
    """A channel refused work for now; ``retry_after`` says when to come back."""

    code, status = "overloaded", 503


_BY_CODE: dict[str, type[Problem]] = {
    cls.code: cls
    for cls in (
        MissingCredentials,
        InvalidToken,
        InsufficientScope,
        InvalidChannel,
        ChannelForbidden,
        PlatformOnly,
        Revoked,
        TenantMissing,
        TooManyChannels,
        NoChannels,
        InvalidCursor,
        InvalidBody,
        BatchTooLarge,
        EventTooLarge,
        UnsupportedMediaType,
        NotFound,
        MethodNotAllowed,
        QuotaExceeded,
        InternalError,
        Unavailable,
        Overloaded,
    )
}


def problem_from_response(status: int, body: bytes, retry_after: float | None = None) -> Problem:
    """The exception for a refused request: the class of its problem code
    when the body is a problem document, else a :class:`Problem` with code
    ``http_<status>``."""
    code = detail = title = None
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        code = _text(document.get("code"))
        detail = _text(document.get("detail"))
        title = _text(document.get("title"))
    if detail is None:
        detail = body[:_PREVIEW_CHARS].decode("utf-8", "replace") or f"HTTP {status}"
    cls = _BY_CODE.get(code or "")
    if cls is not None:
        return cls(detail, status=status, title=title or "", retry_after=retry_after)
    return Problem(
        detail,
        status=status,
        code=code or f"http_{status}",
        title=title or "",
        retry_after=retry_after,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
