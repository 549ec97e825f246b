"""Fixtures for the package's tests.

Tests marked ``relay`` run against the worker in workerd, which
``tests/python.test.mjs`` starts, provisions with API keys and names in the
environment (``EDGESTREAM_TEST_*``). Run them through it:
``node --test tests/python.test.mjs``. The others need nothing:
``pytest python/tests -m "not relay"``.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import django
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")
django.setup()

from fault_proxy import FaultProxy  # noqa: E402
from relay_env import Relay  # noqa: E402


@pytest.fixture(scope="session")
def relay() -> Relay:
    try:
        return Relay.from_environment()
    except KeyError as missing:
        pytest.fail(
            f"{missing} is not set: run the relay tests with `node --test tests/python.test.mjs`",
            pytrace=False,
        )


@pytest.fixture
def channel(relay: Relay) -> str:
    """A channel of the test tenant that no other test uses."""
    return relay.channel()


@pytest.fixture
def proxy(relay: Relay) -> Iterator[FaultProxy]:
    with FaultProxy(relay.url) as p:
        yield p


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "relay" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.relay)


@pytest.fixture
def other_tenant() -> str:
    return str(uuid.uuid4())
