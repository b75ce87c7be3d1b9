"""A flood of bad requests: memory stays bounded (the buffer never holds more than its cap),
what is not kept is counted, accepted events in between still succeed, and a failure to record
never changes a refusal's answer."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from tests.conftest import (
    API_TOKEN,
    all_events,
    assert_error_shape,
    create_source,
    make_config,
    start_server,
)

BUFFER = 20


def samples(metrics_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.e2e  # starts a real server process
def test_a_flood_of_bad_requests_keeps_memory_bounded_and_good_events_flowing(
    tmp_path: Path,
) -> None:
    server = start_server(
        tmp_path / "data",
        tmp_path / "server.log",
        EVENTSTITCH_REJECTIONS_BUFFER_SIZE=str(BUFFER),
        # Long enough that the flood outruns the writes: the buffer must fill and drop.
        EVENTSTITCH_REJECTIONS_FLUSH_MS="1500",
    )
    workers, per_worker = 8, 50
    try:
        with server.client() as http:
            create_source(http, id="hooks")

        def send(worker: int) -> tuple[int, list[str]]:
            bad, good = 0, []
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for n in range(per_worker):
                    if n % 10 == 9:
                        answer = http.post("/collect/order/hooks", json={"w": worker, "n": n})
                        assert answer.status_code == 200, answer.text
                        good.append(answer.json()["id"])
                    else:
                        answer = http.post(
                            "/collect/order/hooks",
                            content=b'{"pad": "' + b"x" * 2000,
                            headers={"content-type": "application/json"},
                        )
                        assert_error_shape(answer, 400)
                        bad += 1
            return bad, good

        with ThreadPoolExecutor(workers) as pool:
            results = [
                f.result(timeout=120) for f in [pool.submit(send, w) for w in range(workers)]
            ]
        bad = sum(b for b, _ in results)
        good = [i for _, ids in results for i in ids]

        with server.client() as http:
            assert sorted(e["id"] for e in all_events(http, source_id="hooks")) == sorted(good)
            page = http.get("/api/rejections", params={"limit": 1000}).json()  # flushes first
            metrics = samples(http.get("/metrics").text)
        peak = metrics[("eventstitch_rejections_buffer_peak", ())]
        assert 0 < peak <= BUFFER
        dropped = metrics[("eventstitch_rejections_dropped_total", (("cause", "buffer_full"),))]
        recorded = metrics[("eventstitch_rejections_recorded_total", ())]
        assert dropped > 0
        assert recorded + dropped == bad
        assert len(page["rejections"]) == recorded
        assert page["dropped"] == {"buffer_full": dropped}
        assert page["dropped_total"] == dropped
        rejected = metrics[("eventstitch_events_rejected_total", (("reason", "malformed_json"),))]
        assert rejected == bad  # every refusal counted, kept or not
    finally:
        server.stop()


def test_the_buffer_never_holds_more_than_its_caps(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, rejections_buffer_size=5, rejections_buffer_bytes=6000, rejections_flush_ms=60000
    )
    app = EventstitchApp(config)
    with TestClient(app) as client:
        for n in range(30):
            body = b"{" + b" " * (n * 100)
            client.post("/collect/order/nope", content=body)
            assert app.ctx.rejections.depth() <= 5
            assert app.ctx.rejections.size_bytes() <= 6000
        assert app.ctx.rejections.peak == 5


def test_a_failure_to_record_never_changes_the_answer(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    app = EventstitchApp(config)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks")
        # The store refuses every rejection write from now on (a real failure, not a mock).
        with sqlite3.connect(tmp_path / "eventstitch.db") as conn:
            conn.execute("DROP TABLE rejections")

        def errors() -> float:
            key = ("eventstitch_rejections_dropped_total", (("cause", "error"),))
            return samples(client.get("/metrics").text).get(key, 0.0)

        before = errors()
        for _ in range(3):
            assert_error_shape(client.post("/collect/order/nope", json={}), 404)
        client.portal.call(app.ctx.rejections.flush)  # type: ignore[union-attr]
        assert errors() == before + 3
        assert client.post("/collect/order/hooks", json={"n": 1}).status_code == 200
        assert_error_shape(client.post("/collect/order/hooks", content=b"{"), 400)
