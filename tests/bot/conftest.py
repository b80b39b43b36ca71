"""Fixtures of the bot's tests: a real PostgreSQL server (tests/pg.py) for the database tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the whole session (started on first use, stopped at the
    end); skipped, saying why, where Debian's postgresql is not installed."""
    from tests.pg import PostgresServer, missing_reason

    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL (postgresql://user:password@127.0.0.1:port/db) of a fresh, empty database."""
    return postgres_server.new_database()
