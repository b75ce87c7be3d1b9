"""Under concurrency and overload, over real HTTP: every 2xx stored once, a full queue
answers 503 with Retry-After and stores nothing for it."""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from tests.conftest import (
    API_TOKEN,
    LiveServer,
    all_events,
    assert_error_shape,
    create_source,
    make_config,
    start_server,
)


def all_event_ids(http: httpx.Client | TestClient, source_id: str) -> list[str]:
    return [e["id"] for e in all_events(http, source_id=source_id)]


@pytest.mark.e2e  # starts a real server process
def test_concurrent_requests_are_each_stored_exactly_once(live_server: LiveServer) -> None:
    connections, per_connection = 16, 25
    with live_server.client() as http:
        create_source(http, id="hooks")

    def send(worker: int) -> list[str]:
        ids = []
        with httpx.Client(base_url=live_server.url, timeout=10) as http:
            for n in range(per_connection):
                answer = http.post("/collect/order/hooks", json={"worker": worker, "n": n})
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["id"])
        return ids

    with ThreadPoolExecutor(connections) as pool:
        futures = [pool.submit(send, worker) for worker in range(connections)]
        acknowledged = [i for future in futures for i in future.result(timeout=120)]
    with live_server.client() as http:
        stored = all_events(http, source_id="hooks")
    assert len(acknowledged) == connections * per_connection
    assert len(set(acknowledged)) == len(acknowledged)
    assert sorted(e["id"] for e in stored) == sorted(acknowledged)
    sent = {(e["properties"]["worker"], e["properties"]["n"]) for e in stored}
    assert len(sent) == connections * per_connection


@pytest.mark.e2e  # starts a real server process
def test_a_full_write_queue_answers_503_and_stores_nothing_for_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(
        data, tmp_path / "server.log", EVENTSTITCH_QUEUE_SIZE="2", EVENTSTITCH_BATCH_SIZE="1"
    )
    requests, held = 20, 3  # at most one event in the stalled writer and two in the queue
    try:
        with server.client() as http:
            create_source(http, id="hooks")
        answers: list[httpx.Response] = []
        answered = threading.Condition()

        def send(n: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                answer = http.post("/collect/order/hooks", json={"n": n})
            with answered:
                answers.append(answer)
                answered.notify_all()

        # Hold the database's write lock so that the writer stalls (on its busy timeout) and
        # the queue fills; release it whatever happens.
        blocker = sqlite3.connect(data / "eventstitch.db", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            threads = [threading.Thread(target=send, args=(n,)) for n in range(requests)]
            for thread in threads:
                thread.start()
            with answered:  # bounded, and well under the writer's 10 s busy timeout
                answered.wait_for(lambda: len(answers) >= requests - held, timeout=8)
                while_blocked = list(answers)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)

        # Nothing was acknowledged while nothing could be committed.
        assert len(while_blocked) >= requests - held
        assert all(a.status_code == 503 for a in while_blocked)
        refused = [a for a in answers if a.status_code == 503]
        accepted = [a for a in answers if a.status_code == 200]
        assert len(answers) == requests
        assert len(refused) + len(accepted) == requests
        assert accepted  # the held requests went through once the lock was released
        for answer in refused:
            assert answer.headers["retry-after"] == "1"
            assert "nothing was stored" in assert_error_shape(answer, 503)["error"]
        with server.client() as http:
            stored = all_event_ids(http, "hooks")
            metrics = http.get("/metrics").text
            kept = http.get("/api/rejections").json()["rejections"]
        assert sorted(stored) == sorted(a.json()["id"] for a in accepted)
        assert 'eventstitch_events_rejected_total{reason="overloaded"}' in metrics
        assert kept == []  # overload refusals are counted, never written (docs/reliability.md)
    finally:
        server.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)
bodies = (
    st.binary(max_size=300)
    | st.text(max_size=200).map(str.encode)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.builds(lambda d: b"[" * d + b"]" * d, st.integers(1, 2000))
)
charsets = st.sampled_from(
    ["utf-8", "UTF-16", "latin-1", "ascii", "undefined", "idna", "punycode", "rot13", "bogus", ""]
)
media_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/cloudevents+json",
        "application/xml",
        "multipart/form-data",
        "image/png",
    ]
)
content_types = (
    st.none()
    | media_types
    | st.builds(lambda media, charset: f"{media}; charset={charset}", media_types, charsets)
    | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
)
event_types = st.sampled_from(["probe", "Page View", "a%2Fb", "%20", "x" * 129, "bad$type"]) | (
    st.text(max_size=12).map(lambda t: quote(t, safe=""))
)


def test_no_input_makes_collect_answer_5xx_and_every_200_is_stored(tmp_path: Path) -> None:
    with TestClient(EventstitchApp(make_config(tmp_path)), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks")
        accepted: list[str] = []

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            bodies,
            content_types,
            event_types,
            st.sampled_from(["POST", "POST", "GET", "PUT"]),
            st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
        )
        def probe(
            body: bytes,
            content_type: str | None,
            event_type: str,
            method: str,
            query: dict[str, str],
        ) -> None:
            headers = {"content-type": content_type} if content_type else {}
            answer = client.request(
                method, f"/collect/{event_type}/hooks", content=body, headers=headers, params=query
            )
            if answer.status_code == 200:
                assert answer.json()["ok"] is True
                if "handshake" not in answer.json():  # a bare GET is a URL check: no event
                    accepted.append(answer.json()["id"])
            else:
                assert 400 <= answer.status_code < 500, answer.text
                assert_error_shape(answer, answer.status_code)

        probe()
        assert accepted  # the inputs include plenty of valid ones
        assert sorted(all_event_ids(client, "hooks")) == sorted(accepted)
