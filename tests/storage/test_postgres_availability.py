"""Without PostgreSQL the suite still runs, saying what it skipped; under CI=true it fails."""

from __future__ import annotations

import pytest

from tests import pg
from tests.conftest import free_port


def test_unreachable_postgres_skips_with_the_reason_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "EVENTSTITCH_TEST_POSTGRES_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    )
    monkeypatch.delenv("CI", raising=False)
    pg.unavailable_reason.cache_clear()
    try:
        with pytest.raises(pytest.skip.Exception) as skipped:
            pg.require_postgres()
        assert "PostgreSQL" in str(skipped.value) or "psycopg" in str(skipped.value)
        monkeypatch.setenv("CI", "true")
        with pytest.raises(pytest.fail.Exception, match="CI=true"):
            pg.require_postgres()
    finally:
        pg.unavailable_reason.cache_clear()  # the next test asks the real server again


def test_a_fresh_url_keeps_the_options_it_had() -> None:
    url = pg.with_search_path("postgresql://u@h:5/db?options=-cwork_mem%3D8MB&sslmode=off", "s1")
    assert url == "postgresql://u@h:5/db?sslmode=off&options=-cwork_mem%3D8MB%20-csearch_path%3Ds1"
