"""Every store test here runs against both stores: embedded chdb and a server over HTTP."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["embedded", "server"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param
