"""Under concurrency and overload, over real HTTP: every 2xx stored once, a full queue
answers 503 with Retry-After and stores nothing for it."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from tests.conftest import (
    API_TOKEN,
    LiveServer,
    all_events,
    create_source,
    make_config,
    start_server,
)


def all_event_ids(http: httpx.Client, source_id: str) -> list[str]:
    return [e["id"] for e in all_events(http, source_id=source_id)]


def test_concurrent_requests_are_each_stored_exactly_once(live_server: LiveServer) -> None:
    with live_server.client() as http:
        create_source(http, id="hooks")

    def send(n: int) -> str:
        with httpx.Client(base_url=live_server.url, timeout=10) as http:
            answer = http.post("/collect/order/hooks", json={"n": n})
            assert answer.status_code == 200
            event_id: str = answer.json()["id"]
            return event_id

    with ThreadPoolExecutor(16) as pool:
        acknowledged = list(pool.map(send, range(400)))
    with live_server.client() as http:
        stored = all_event_ids(http, "hooks")
    assert len(set(acknowledged)) == 400
    assert sorted(stored) == sorted(acknowledged)


def test_a_full_write_queue_answers_503_and_stores_nothing_for_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(
        data, tmp_path / "server.log", EVENTSTITCH_QUEUE_SIZE="2", EVENTSTITCH_BATCH_SIZE="1"
    )
    try:
        with server.client() as http:
            create_source(http, id="hooks")
        # Hold the database's write lock so that the writer stalls and the queue fills.
        blocker = sqlite3.connect(data / "eventstitch.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def send(n: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                answer = http.post("/collect/order/hooks", json={"n": n})
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        deadline = threading.Event()
        for _ in range(100):  # wait (bounded) until the refusals are in
            with lock:
                if sum(a.status_code == 503 for a in answers) >= 10:
                    break
            deadline.wait(0.1)
        blocker.execute("ROLLBACK")
        blocker.close()
        for thread in threads:
            thread.join(timeout=30)
        refused = [a for a in answers if a.status_code == 503]
        accepted = [a for a in answers if a.status_code == 200]
        assert len(answers) == 20
        assert len(refused) >= 10
        assert len(refused) + len(accepted) == 20
        for answer in refused:
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["status"] == 503
            assert "nothing was stored" in answer.json()["error"]
        with server.client() as http:
            stored = all_event_ids(http, "hooks")
            metrics = http.get("/metrics").text
        assert sorted(stored) == sorted(a.json()["id"] for a in accepted)
        assert 'eventstitch_events_rejected_total{reason="overloaded"}' in metrics
    finally:
        server.stop()


bodies = st.binary(max_size=300) | st.text(max_size=200).map(str.encode)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-16",
        "application/xml",
        "image/png",
    ]
) | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


def test_no_input_makes_collect_answer_5xx(tmp_path: Path) -> None:
    with TestClient(EventstitchApp(make_config(tmp_path))) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks")
        accepted = 0

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(bodies, content_types, st.sampled_from(["POST", "GET", "PUT"]))
        def probe(body: bytes, content_type: str | None, method: str) -> None:
            nonlocal accepted
            headers = {"content-type": content_type} if content_type else {}
            answer = client.request(method, "/collect/probe/hooks", content=body, headers=headers)
            assert answer.status_code < 500, answer.text
            if answer.status_code == 200:
                accepted += 1
            else:
                error = answer.json()
                assert set(error) == {"ok", "error", "errors", "status"}
                assert error["status"] == answer.status_code

        probe()
        total = client.get("/api/insights/counts", params={"source_id": "hooks"}).json()["total"]
        assert total == accepted
