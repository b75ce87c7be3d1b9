"""`serve` on SQLite hands events to its writer process (the default): every answer a client
can get from the writer crosses the process boundary unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import all_events, assert_error_shape, create_source, start_server

pytestmark = pytest.mark.e2e  # starts server processes


def test_answers_through_the_writer_process_are_those_of_the_writer_thread(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "data", tmp_path / "server.log", EVENTSTITCH_WORKERS="2")
    try:
        with server.client() as http:
            create_source(http, id="hooks")
            create_source(http, id="alerts", shaping={"split": "alerts"})
            stored = http.post("/collect/order/hooks", json={"n": 1})
            assert stored.status_code == 200
            first = http.post(
                "/collect/order/hooks", json={"n": 2}, headers={"Idempotency-Key": "d-1"}
            )
            again = http.post(
                "/collect/order/hooks", json={"n": 2}, headers={"Idempotency-Key": "d-1"}
            )
            assert again.status_code == 200
            assert again.json()["duplicate"] is True
            assert again.json()["id"] == first.json()["id"]
            split = http.post("/collect/alert/alerts", json={"alerts": [{"a": 1}, {"a": 2}]})
            assert split.status_code == 200
            assert len(split.json()["ids"]) == 2
            assert_error_shape(http.post("/collect/order/nosuch", json={"n": 3}), 404)
            assert http.patch("/api/sources/hooks", json={"enabled": False}).status_code == 200
            assert_error_shape(http.post("/collect/order/hooks", json={"n": 4}), 403)
            ids = {e["id"] for e in all_events(http, source_id="hooks")}
            assert ids == {stored.json()["id"], first.json()["id"]}
            assert {e["id"] for e in all_events(http, source_id="alerts")} == set(
                split.json()["ids"]
            )
    finally:
        server.stop()
