"""Fresh PostgreSQL schemas as URLs, for tests that hand a database to settings or processes.

``pg_url`` (tests/conftest.py) is a libpq key=value string; settings and subprocesses take
``postgresql://`` URLs, so these carry the schema as the URL's ``options`` parameter.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from workflow.db import apply_migrations

__all__ = ["fresh_schema_url", "schema_url"]


def schema_url(server_url: str, schema: str) -> str:
    """``server_url`` with every connection's search_path set to ``schema``."""
    parts = urlsplit(server_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextmanager
def fresh_schema_url(server_url: str, prefix: str = "msd_test") -> Iterator[str]:
    """A migrated schema of its own, as a URL; dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = schema_url(server_url, schema)
    try:
        apply_migrations(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
