"""Backoff and Retry-After, without a relay."""

from __future__ import annotations

import pytest

from edgestream import RetryPolicy
from edgestream.retry import parse_retry_after


def test_backoff_doubles_within_the_upper_half_then_caps() -> None:
    policy = RetryPolicy(attempts=100, initial_delay=0.1, max_delay=5.0)
    for retry, ceiling in enumerate([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0], start=1):
        for _ in range(20):
            delay = policy.delay(retry)
            assert delay is not None and ceiling / 2 <= delay <= ceiling, (retry, delay)
    assert policy.ceiling(10_000) == 5.0


def test_attempts_count_the_first_try() -> None:
    policy = RetryPolicy(attempts=3)
    assert policy.delay(1) is not None and policy.delay(2) is not None
    assert policy.delay(3) is None
    assert RetryPolicy(attempts=1).delay(1) is None


def test_retry_after_is_never_cut_short_and_is_bounded() -> None:
    policy = RetryPolicy(attempts=5, initial_delay=0.2, max_retry_after=30)
    for _ in range(50):
        delay = policy.delay(1, retry_after=2.0)
        assert delay is not None and 2.0 <= delay <= 2.1
    assert policy.delay(1, retry_after=30.0) is not None
    assert policy.delay(1, retry_after=31.0) is None
    assert policy.delay(5, retry_after=0.0) is None


def test_policies_that_make_no_sense_are_refused() -> None:
    for bad in [
        dict(attempts=0),
        dict(initial_delay=2.0, max_delay=1.0),
        dict(initial_delay=-1.0),
        dict(max_retry_after=-1.0),
    ]:
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("٣", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after_values(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = 1_445_412_000.0  # 2015-10-21 07:20:00 UTC
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 480.0
