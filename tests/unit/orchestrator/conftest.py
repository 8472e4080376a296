"""Fixtures of the REST API tests: a fake mesh (``h``) and clients with and without a token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.api_client import Api
from tests.support.api_fixtures import (
    Harness,
    mesh,
)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with mesh(tmp_path) as harness:
        yield harness


@pytest.fixture
def api(h: Harness) -> Iterator[Api]:
    with TestClient(h.app()) as client:
        a = Api(client)
        yield a
    a.assert_no_secret()


@pytest.fixture
def open_api(h: Harness) -> Iterator[Api]:
    """The app with no token configured."""
    with TestClient(h.app(token=None)) as client:
        a = Api(client)
        yield a
    a.assert_no_secret()
