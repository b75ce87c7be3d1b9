"""`serve --workers 2`: two processes on one port share the store; a source disabled through
one is refused by both at once."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import all_events, assert_error_shape, create_source, start_server

pytestmark = pytest.mark.e2e  # every test here starts server processes


def test_two_workers_on_one_port_store_everything_and_agree_on_disabled_sources(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "data", tmp_path / "server.log", EVENTSTITCH_WORKERS="2")
    try:
        with server.client() as http:
            create_source(http, id="hooks")
            # New connections are spread over both worker processes by the kernel.
            ids = []
            for n in range(60):
                with httpx.Client(base_url=server.url, timeout=10) as fresh:
                    answer = fresh.post("/collect/order/hooks", json={"n": n})
                    assert answer.status_code == 200
                    ids.append(answer.json()["id"])
            assert sorted(e["id"] for e in all_events(http, source_id="hooks")) == sorted(ids)
            assert http.patch("/api/sources/hooks", json={"enabled": False}).status_code == 200
            for n in range(20):
                with httpx.Client(base_url=server.url, timeout=10) as fresh:
                    assert_error_shape(fresh.post("/collect/order/hooks", json={"n": n}), 403)
            assert len(all_events(http, source_id="hooks")) == 60
    finally:
        server.stop()
