"""When to try a request again, and how long to wait first.

Retried: connection errors, timeouts, 429 and 5xx answers. Never retried:
any other 4xx, which would fail the same way again. Every publish carries
idempotency keys, so a retry of a publish the relay had already stored is
answered ``duplicate: true`` and delivers nothing twice.

Waits follow the bridge's backoff (``bridge/src/backoff.rs``): the ceiling
doubles per retry up to ``max_delay`` and each wait is drawn from its upper
half, so a failing relay is not hammered and publishers that failed together
do not come back in lockstep. A ``Retry-After`` from the relay (``overloaded``,
``quota_exceeded``) replaces the backoff: the wait is never shorter than
asked, plus a little jitter; one longer than ``max_retry_after`` is not
waited out but reported, with the problem's ``retry_after`` set.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried.

    Attributes:
        attempts: tries in all, the first included (1 turns retries off).
        initial_delay: seconds; the first backoff's ceiling.
        max_delay: seconds; the largest backoff ceiling.
        max_retry_after: seconds; the longest ``Retry-After`` that is waited
            out. A longer one ends the retries at once.
    """

    attempts: int = 5
    initial_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0 <= self.initial_delay <= self.max_delay:
            raise ValueError("need 0 <= initial_delay <= max_delay")
        if self.max_retry_after < 0:
            raise ValueError("max_retry_after must not be negative")

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``retry`` (1 for the first),
        or ``None`` when there is to be no such retry."""
        if retry >= self.attempts:
            return None
        ceiling = self.ceiling(retry)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return retry_after + random.uniform(0, ceiling / 2)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def ceiling(self, retry: int) -> float:
        """``initial_delay * 2^(retry-1)``, capped at ``max_delay``."""
        return min(self.initial_delay * 2.0 ** min(retry - 1, 62), self.max_delay)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date
    (RFC 9110 section 10.2.3). ``None`` for an absent or unreadable value, so
    the caller falls back to its own backoff."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
