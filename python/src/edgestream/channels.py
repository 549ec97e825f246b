"""Channel names: ``<prefix>:<tenant_id>:<resource_id>``.

The relay reads a channel's tenant out of its name and lets a credential
reach only its own tenant's channels, so a name has to mean exactly what it
says. These are the relay's own rules (``core/src/channel.rs``), mirrored
case for case, so that a bad name fails in the code that builds it rather
than as a ``400 invalid_channel`` from the relay:

- exactly three segments separated by ``:``;
- prefix: 1-64 of ``a-z 0-9 -``, starting with a letter;
- tenant: a UUID in canonical lowercase hyphenated form (uppercase is
  refused, not normalised, so one tenant has one spelling);
- resource: 1-128 of ``A-Z a-z 0-9 - _ .``;
- the whole name at most 255 bytes.

Building a name from a segment that contains ``:`` is an error, never an
escape: ``make_channel_name("a", tenant, f"{other_tenant}:x")`` must not be a
way to spell a name in another tenant.
"""

from __future__ import annotations

import re
import uuid
from typing import NamedTuple

from .errors import InvalidChannel

__all__ = [
    "MAX_NAME_BYTES",
    "Channel",
    "is_canonical_uuid",
    "make_channel_name",
    "parse_channel",
    "tenant_id_from_channel",
]

MAX_NAME_BYTES = 255

_PREFIX = re.compile(r"[a-z][a-z0-9-]{0,63}", re.ASCII)
_TENANT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
_RESOURCE = re.compile(r"[A-Za-z0-9._-]{1,128}", re.ASCII)

# The relay's own wording, so a message reads the same from either side.
_TOO_LONG = "channel must be at most 255 bytes"
_SEGMENT_COUNT = "channel must have exactly 3 ':'-separated segments"
_SEPARATOR = "channel segments must not contain ':'"
_BAD_PREFIX = "channel prefix must be 1-64 characters of a-z, 0-9 and '-', starting with a letter"
_BAD_TENANT = "channel tenant must be a UUID in lowercase hyphenated 8-4-4-4-12 form"
_BAD_RESOURCE = "channel resource must be 1-128 characters of A-Z, a-z, 0-9, '-', '_' and '.'"


class Channel(NamedTuple):
    """A channel name that follows the rules, split into its segments."""

    prefix: str
    tenant_id: str
    resource_id: str

    @property
    def name(self) -> str:
        return f"{self.prefix}:{self.tenant_id}:{self.resource_id}"

    def __str__(self) -> str:
        return self.name


def is_canonical_uuid(value: str) -> bool:
    """True for a UUID in the one spelling the relay accepts:
    lowercase, hyphenated 8-4-4-4-12, nothing around it."""
    return _TENANT.fullmatch(value) is not None


def parse_channel(name: str) -> Channel:
    """Splits a channel name into its segments.

    Raises:
        InvalidChannel: (a ``ValueError``) when the name breaks a rule; the
            message says which.
    """
    if not isinstance(name, str):
        raise InvalidChannel(f"channel must be a string, not {type(name).__name__}")
    # The length is checked first, as the relay does, so a hostile value is
    # never split.
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidChannel(_TOO_LONG)
    segments = name.split(":")
    if len(segments) != 3:
        raise InvalidChannel(_SEGMENT_COUNT)
    prefix, tenant, resource = segments
    if _PREFIX.fullmatch(prefix) is None:
        raise InvalidChannel(_BAD_PREFIX)
    if not is_canonical_uuid(tenant):
        raise InvalidChannel(_BAD_TENANT)
    if _RESOURCE.fullmatch(resource) is None:
        raise InvalidChannel(_BAD_RESOURCE)
    return Channel(prefix, tenant, resource)


def make_channel_name(
    prefix: str,
    tenant_id: str | uuid.UUID,
    resource_id: str | int | uuid.UUID,
) -> str:
    """Builds ``<prefix>:<tenant_id>:<resource_id>``.

    ``tenant_id`` may be a :class:`uuid.UUID` (its ``str()`` is the canonical
    form) or a string already in canonical form; ``resource_id`` may be a
    string, an integer primary key or a UUID.

    Raises:
        InvalidChannel: (a ``ValueError``) when a segment contains ``:`` or
            the name breaks any other rule.
    """
    parts = [_segment(prefix), _segment(tenant_id), _segment(resource_id)]
    if any(":" in part for part in parts):
        raise InvalidChannel(_SEPARATOR)
    name = ":".join(parts)
    parse_channel(name)
    return name


def tenant_id_from_channel(channel: str) -> uuid.UUID | None:
    """The tenant of a channel name, or ``None`` when the name breaks a rule.

    ``None`` means "no tenant": treat it as not authorised, never as a
    wildcard.
    """
    try:
        return uuid.UUID(parse_channel(channel).tenant_id)
    except InvalidChannel:
        return None


def _segment(value: object) -> str:
    # bool is an int, and "True" would pass as a resource id: refuse it rather
    # than build a name nobody meant.
    if isinstance(value, bool) or not isinstance(value, (str, int, uuid.UUID)):
        raise InvalidChannel(
            f"channel segments must be strings, integers or UUIDs, not {type(value).__name__}"
        )
    return str(value)
