"""Schemathesis against the published /openapi.json: generated requests to every operation find no 5xx.

Bounded: a few dozen examples per operation (a few hundred requests in all), with a token whose rate limit is
out of the way, plus a round without a token (every operation must then answer 401, never 5xx).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import Served

EXAMPLES = 15


def _checker(served: Served, op, headers: dict[str, str], seen: dict[str, set[int]],
             examples: int):
    """A bounded property test of one operation: every generated request answers below 500."""
    label = op.label

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def check(case) -> None:
        resp = case.call(base_url=served.base, headers=headers, timeout=30)
        seen.setdefault(label, set()).add(resp.status_code)
        assert resp.status_code < 500, (label, case.path_parameters, case.query, resp.status_code, resp.text[:300])

    return check


def _run(served: Served, token: str | None, examples: int) -> dict[str, set[int]]:
    schema = schemathesis.openapi.from_url(served.base + "/openapi.json")
    headers = {"Authorization": f"Bearer {served.env.tokens[token]}"} if token else {}
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        _checker(served, result.ok(), headers, seen, examples)()
    return seen


def test_no_server_errors_with_a_token(served: Served) -> None:
    seen = _run(served, "fuzz", EXAMPLES)
    assert len(seen) >= 14
    assert sum(200 in codes for codes in seen.values()) >= 10  # the schema's examples reach real buildings


def test_no_server_errors_without_a_token(served: Served) -> None:
    seen = _run(served, None, 3)
    assert all(codes <= {401, 422} for codes in seen.values()), seen
