"""Generated requests from the API's own OpenAPI schema: no 500, no answer outside the schema.

Every operation gets a bounded number of examples (``MAX_EXAMPLES``), valid and invalid, sent
with an admin token over real PostgreSQL and ClickHouse holding a few alerts.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from api.app import create_app
from msd.runtime import Services
from tests.api.conftest import seed_alerts
from workflow import accounts

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def test_no_request_the_schema_allows_gets_a_server_error_or_an_off_schema_answer(
    services: Services,
) -> None:
    seed_alerts(services.db, 30)
    services.replicator.drain()
    token = accounts.create_token(services.db, "fuzz", "admin")[1]
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", create_app(services))
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    # The live stream never ends by itself; tests/api/test_live_api.py covers it.
    operations = [op for op in operations if op.path != "/api/live"]

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def exercise(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            exercise()
        except Exception as error:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {error}")

    assert len(operations) >= 15
    assert failures == []
