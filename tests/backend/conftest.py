from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def redis_url(start_redis) -> str:
    """A real redis-server on loopback, shared by the backend's tests."""
    return start_redis()
