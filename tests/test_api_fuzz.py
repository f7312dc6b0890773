"""Fuzz the OpenAPI schema with schemathesis against the real server: no 5xx, ever."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from .server import corpus_with_head, serving

EXAMPLES = 25  # per operation: bounded, so the suite stays fast


@pytest.fixture(scope="module")
def api_schema(pg_url: str, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    config = corpus_with_head(pg_url, tmp_path_factory.mktemp("fuzz") / "home", small_corpus)
    with serving(config, auth=False) as url:
        loaded = schemathesis.openapi.from_url(url + "/openapi.json")
        loaded.config.update(base_url=url)
        yield loaded


def test_no_server_errors(api_schema) -> None:  # type: ignore[no-untyped-def]
    """Every operation, EXAMPLES generated cases each (schemathesis' own pytest plugin does not
    run on this pytest, so the operations are driven through their Hypothesis strategies)."""
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(timeout=120)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            ok = response.status_code < 500 or (response.status_code == 503 and "slow explanation" in response.text)
            if not ok:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")

        check()
    assert not failures, "\n".join(failures[:20])
    assert sum(statuses.values()) >= 5 * len(operations) and statuses.get(200, 0) > 0, statuses
    print("fuzz statuses:", dict(sorted(statuses.items())))
