"""Channel names: the relay's cases (core/src/channel.rs), and the relay
itself agreeing with the package on every one of them."""

from __future__ import annotations

import uuid

import pytest

from edgestream import InvalidChannel, make_channel_name, parse_channel, tenant_id_from_channel
from edgestream.channels import MAX_NAME_BYTES, Channel

T = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19"
OTHER = "11111111-2222-4333-8444-555555555555"

BAD_TENANTS = [
    "0B9C2F4E-8A1D-4C3B-9E7F-6A5D4C3B2A19",
    "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2A19",
    "0b9c2f4e8a1d4c3b9e7f6a5d4c3b2a19",
    "0b9c2f4e-8a1d-4c3b-9e7f6a5d4c3b2a19-",
    "{0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19}",
    "urn:uuid:0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19",
    "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a1",
    "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a190",
    "0b9c2f4-e8a1d-4c3b-9e7f-6a5d4c3b2a19",
    "0b9c2f4g-8a1d-4c3b-9e7f-6a5d4c3b2a19",
    "0b9c2f4e_8a1d_4c3b_9e7f_6a5d4c3b2a19",
    " 0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a1",
    "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19\n",
    "tenant",
]
BAD_PREFIXES = [
    "1scan",
    "-scan",
    "Scan",
    "sCan",
    "scan_progress",
    "scan.progress",
    "",
    " scan",
    "scän",
    "a" * 65,
]
BAD_RESOURCES = [
    "",
    "a b",
    "a/b",
    "../x",
    "é",
    "x\x00",
    "x\n",
    "%2F",
    "a+b",
    "a,b",
    "a;b",
    "R" * 129,
]


def name(prefix: str, tenant: str, resource: str) -> str:
    return f"{prefix}:{tenant}:{resource}"


def message(value: str) -> str:
    with pytest.raises(InvalidChannel) as err:
        parse_channel(value)
    return err.value.detail


# Every name the relay's own tests decide, with the verdict: None for a valid
# name, else the start of the reason.
CASES: list[tuple[str, str | None]] = [
    (name("scan-progress", T, "Scan_42.v1"), None),
    (name("a", T, "x"), None),
    (name("a-1-b", T, "x"), None),
    (name("a" * 64, T, "x"), None),
    (name("a", T, "R" * 128), None),
    (name("a", T, "A-z_0.9"), None),
    (name("a", "00000000-0000-0000-0000-000000000000", "x"), None),
    (name("a" * 64, T, "x" * 128), None),
    ("", "channel must have exactly 3"),
    ("a", "channel must have exactly 3"),
    (f"a:{T}", "channel must have exactly 3"),
    (f"a:{T}:x:y", "channel must have exactly 3"),
    (f"a:{T}:x:", "channel must have exactly 3"),
    (f"a:{T}:", "channel resource"),
    ("::", "channel prefix"),
    (f":{T}:x", "channel prefix"),
    ("a::x", "channel tenant"),
    (f"a%3A{T}%3Ax", "channel must have exactly 3"),
    (f"a:{T}:x%3Ay", "channel resource"),
    (f"a%3Ab:{T}:x", "channel prefix"),
    (name("a", T, "x" * 255), "channel must be at most 255 bytes"),
    (":" * 256, "channel must be at most 255 bytes"),
    *[
        (name("a", bad, "x"), "channel must have exactly 3" if ":" in bad else "channel tenant")
        for bad in BAD_TENANTS
    ],
    *[(name(bad, T, "x"), "channel prefix") for bad in BAD_PREFIXES],
    *[(name("a", T, bad), "channel resource") for bad in BAD_RESOURCES],
]


@pytest.mark.parametrize(("value", "reason"), CASES)
def test_the_relays_cases(value: str, reason: str | None) -> None:
    if reason is None:
        assert parse_channel(value).name == value
    else:
        assert message(value).startswith(reason)


def test_segments_and_round_trip() -> None:
    channel = parse_channel(name("scan-progress", T, "Scan_42.v1"))
    assert channel == Channel("scan-progress", T, "Scan_42.v1")
    assert str(channel) == channel.name == name("scan-progress", T, "Scan_42.v1")
    assert make_channel_name("scan", uuid.UUID(T), 42) == f"scan:{T}:42"
    assert make_channel_name("scan", T, uuid.UUID(OTHER)) == f"scan:{T}:{OTHER}"


@pytest.mark.parametrize(
    ("prefix", "tenant", "resource"),
    [
        ("a:b", T, "x"),
        ("a", "0b9c2f4e:8a1d", "x"),
        ("a", T, "x:y"),
        ("a", T, ":"),
        ("a", f"{T}:a", "x"),
        ("a", T, f"{OTHER}:x"),
    ],
)
def test_building_with_a_separator_is_an_error_never_an_escape(
    prefix: str, tenant: str, resource: str
) -> None:
    with pytest.raises(InvalidChannel) as err:
        make_channel_name(prefix, tenant, resource)
    assert err.value.detail == "channel segments must not contain ':'"
    assert isinstance(err.value, ValueError), "the seed's helper raised ValueError"


def test_building_applies_every_rule() -> None:
    for bad in BAD_TENANTS:
        with pytest.raises(InvalidChannel):
            make_channel_name("a", bad, "x")
    for bad in BAD_PREFIXES:
        with pytest.raises(InvalidChannel):
            make_channel_name(bad, T, "x")
    with pytest.raises(InvalidChannel):
        make_channel_name("a", T, True)  # type: ignore[arg-type]
    with pytest.raises(InvalidChannel):
        make_channel_name("a", T, None)  # type: ignore[arg-type]


def test_tenant_id_from_channel() -> None:
    tenant = uuid.uuid4()
    assert (
        tenant_id_from_channel(make_channel_name("lighthouse-session", tenant, uuid.uuid4()))
        == tenant
    )
    assert (
        tenant_id_from_channel(make_channel_name("a-long-hyphenated-prefix", tenant, "res"))
        == tenant
    )
    for value, reason in CASES:
        if reason is not None:
            assert tenant_id_from_channel(value) is None, value
    assert tenant_id_from_channel(42) is None  # type: ignore[arg-type]


def test_the_cap_is_on_utf8_bytes() -> None:
    assert MAX_NAME_BYTES == 255
    assert message(name("a", T, "é" * 110)).startswith("channel must be at most 255 bytes")


def test_the_relay_agrees_on_every_case(relay) -> None:  # type: ignore[no-untyped-def]
    """Sent without the package's checks: where the package accepts a name
    the relay stores the event, where it refuses one the relay answers
    400 invalid_channel."""
    for value, reason in CASES:
        status, body = relay.post("/v1/publish", {"channel": value, "event": "e", "data": 1})
        if reason is None:
            assert status == 202, (value, body)
        else:
            assert (status, body["code"]) == (400, "invalid_channel"), (value, body)
