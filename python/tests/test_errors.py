"""Problem documents become one exception class per code."""

from __future__ import annotations

import json

import pytest

import edgestream
from edgestream.errors import _BY_CODE, problem_from_response

# Every code core/src/problem.rs has, plus the overload codes of the contract.
CODES = {
    "missing_credentials": 401,
    "invalid_token": 401,
    "insufficient_scope": 403,
    "invalid_channel": 400,
    "channel_forbidden": 403,
    "platform_only": 403,
    "revoked": 403,
    "tenant_missing": 403,
    "too_many_channels": 400,
    "no_channels": 400,
    "invalid_cursor": 400,
    "invalid_body": 400,
    "batch_too_large": 400,
    "event_too_large": 413,
    "unsupported_media_type": 415,
    "not_found": 404,
    "method_not_allowed": 405,
    "internal": 500,
    "unavailable": 503,
    "overloaded": 503,
    "quota_exceeded": 429,
}


def document(code: str, status: int) -> bytes:
    return json.dumps(
        {
            "type": f"urn:edgestream:problem:{code}",
            "title": "T",
            "status": status,
            "detail": "what went wrong",
            "code": code,
        }
    ).encode()


@pytest.mark.parametrize(("code", "status"), CODES.items())
def test_each_code_has_its_class(code: str, status: int) -> None:
    problem = problem_from_response(status, document(code, status), retry_after=3.0)
    assert type(problem) is _BY_CODE[code]
    assert type(problem).__name__ in edgestream.__all__
    assert (problem.code, problem.status, problem.detail, problem.title) == (
        code,
        status,
        "what went wrong",
        "T",
    )
    assert type(problem).status == status, "the class knows its status for local errors"
    assert problem.retry_after == 3.0
    assert str(problem) == f"{status} {code}: what went wrong"
    assert problem.retryable == (status == 429 or status >= 500)
    assert isinstance(problem, edgestream.Problem) and isinstance(
        problem, edgestream.EdgestreamError
    )


def test_every_class_is_listed() -> None:
    assert set(_BY_CODE) == set(CODES)


def test_input_errors_are_value_errors() -> None:
    for cls in (
        edgestream.InvalidChannel,
        edgestream.InvalidBody,
        edgestream.EventTooLarge,
        edgestream.BatchTooLarge,
        edgestream.TooManyChannels,
        edgestream.NoChannels,
    ):
        assert issubclass(cls, ValueError)
    for cls in (edgestream.ChannelForbidden, edgestream.InvalidToken, edgestream.Overloaded):
        assert not issubclass(cls, ValueError)


def test_an_unknown_code_keeps_its_code_and_status() -> None:
    problem = problem_from_response(409, document("conflict_of_sorts", 409))
    assert type(problem) is edgestream.Problem
    assert (problem.code, problem.status, problem.retryable) == ("conflict_of_sorts", 409, False)
    assert problem_from_response(502, document("new_overload", 502)).retryable


def test_an_answer_that_is_not_a_problem_document() -> None:
    problem = problem_from_response(502, b"<html>Bad gateway</html>")
    assert (problem.code, problem.status, problem.detail, problem.retryable) == (
        "http_502",
        502,
        "<html>Bad gateway</html>",
        True,
    )
    assert problem_from_response(404, b"").detail == "HTTP 404"
    assert len(problem_from_response(400, b"x" * 10_000).detail) == 200
    assert problem_from_response(400, b'{"code": 7, "detail": ["x"]}').code == "http_400"
