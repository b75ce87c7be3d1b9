"""Every refusal of the webhook bridge: a 4xx in the one error shape, and nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from tests.conftest import (
    API_TOKEN,
    all_events,
    assert_error_shape,
    create_source,
    make_config,
)


def event_count(client: TestClient) -> int:
    """Every stored event, of every source: a refusal must store nothing anywhere."""
    return len(all_events(client))


@pytest.fixture
def hooks(client: TestClient) -> TestClient:
    create_source(client, id="hooks")
    create_source(client, id="off", enabled=False)
    create_source(client, id="web", kind="tracker")
    return client


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "says"),
    [
        (
            "/collect/order/hooks",
            b'{"a": 1,',
            {"content-type": "application/json"},
            400,
            "malformed JSON at line 1, column 9",
        ),
        ("/collect/order/hooks", b'{"a": }', {"content-type": "text/plain"}, 400, "malformed JSON"),
        ("/collect/order/hooks", b"not json", {}, 400, "malformed JSON"),
        (
            "/collect/order/hooks",
            b"<a/>",
            {"content-type": "application/xml"},
            415,
            "'application/xml' is not supported",
        ),
        (
            "/collect/order/hooks",
            b"--x\r\n",
            {"content-type": "multipart/form-data; boundary=x"},
            415,
            "not supported",
        ),
        (
            "/collect/order/hooks",
            b'{"a": 1}',
            {"content-type": "application/json; charset=klingon"},
            415,
            "charset 'klingon' is not known",
        ),
        (
            "/collect/order/hooks",
            b'{"a": "\xff"}',
            {"content-type": "application/json; charset=ascii"},
            400,
            "not valid ascii",
        ),
        (
            "/collect/order/hooks",
            b"[" * 40 + b"]" * 40,
            {"content-type": "application/json"},
            400,
            "deeper than the limit of 32",
        ),
        (
            "/collect/order/hooks",
            b"[" * 3000 + b"]" * 3000,
            {"content-type": "application/json"},
            400,
            "deeper than the limit",
        ),
        (
            "/collect/order/hooks",
            b'{"n": 123456789012345678901234567890}',
            {"content-type": "application/json"},
            400,
            "outside signed 64 bits",
        ),
        (
            "/collect/order/nope",
            b"{}",
            {"content-type": "application/json"},
            404,
            "source 'nope' not found",
        ),
        (
            "/collect/order/off",
            b"{}",
            {"content-type": "application/json"},
            403,
            "source 'off' is disabled",
        ),
        (
            "/collect/order/web",
            b"{}",
            {"content-type": "application/json"},
            403,
            "is a tracker source",
        ),
        (
            "/collect/bad$type/hooks",
            b"{}",
            {"content-type": "application/json"},
            400,
            "event type 'bad$type' is not allowed",
        ),
        ("/collect/" + "x" * 129 + "/hooks", b"{}", {}, 400, "at most 128 characters"),
        ("/collect/order", b"{}", {}, 404, "expected /collect/{event_type}/{source_id}"),
        ("/collect/order/hooks/", b"{}", {}, 404, "expected /collect/"),
        ("/collect/order//hooks", b"{}", {}, 400, "segments joined by"),
    ],
)
def test_collect_refuses_bad_input_clearly_and_stores_nothing(
    hooks: TestClient, path: str, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    before = event_count(hooks)
    answer = hooks.post(path, content=body, headers=headers)
    error = assert_error_shape(answer, status)
    assert says in error["error"]
    assert event_count(hooks) == before


def test_collect_refuses_a_method_other_than_get_or_post(hooks: TestClient) -> None:
    before = event_count(hooks)
    answer = hooks.put("/collect/order/hooks", json={"a": 1})
    assert_error_shape(answer, 405)
    assert answer.headers["allow"] == "GET, POST"
    assert event_count(hooks) == before


def test_collect_refuses_a_body_over_the_limit_and_stores_nothing(tmp_path: Path) -> None:
    with TestClient(EventstitchApp(make_config(tmp_path, max_body_bytes=100))) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks")
        before = event_count(client)
        small = client.post("/collect/order/hooks", json={"a": "x" * 50})
        assert small.status_code == 200
        big = client.post("/collect/order/hooks", json={"a": "x" * 200})
        error = assert_error_shape(big, 413)
        assert "larger than the limit of 100 bytes" in error["error"]
        assert error["errors"] == [{"field": "body", "limit": 100}]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
            for _ in range(10):
                yield b'{"pad": "' + b"x" * 30 + b'"}'

        streamed = client.post("/collect/order/hooks", content=chunks())
        assert_error_shape(streamed, 413)
        assert event_count(client) == before + 1


def test_a_disabled_source_refuses_the_very_next_request(hooks: TestClient) -> None:
    assert hooks.post("/collect/order/hooks", json={"n": 1}).status_code == 200
    assert hooks.patch("/api/sources/hooks", json={"enabled": False}).status_code == 200
    assert_error_shape(hooks.post("/collect/order/hooks", json={"n": 2}), 403)
    assert hooks.patch("/api/sources/hooks", json={"enabled": True}).status_code == 200
    assert hooks.post("/collect/order/hooks", json={"n": 3}).status_code == 200
    assert hooks.delete("/api/sources/hooks").status_code == 204
    assert_error_shape(hooks.post("/collect/order/hooks", json={"n": 4}), 404)
    events = hooks.get("/api/events", params={"source_id": "hooks"}).json()["events"]
    assert [e["properties"]["n"] for e in events] == [3, 1]


def rejected(client: TestClient, reason: str) -> float:
    """The process-wide counter of refusals for one reason (metrics outlive a test)."""
    prefix = f'eventstitch_events_rejected_total{{reason="{reason}"}} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def test_refusals_are_counted_by_reason_in_metrics(hooks: TestClient) -> None:
    unknown, malformed = rejected(hooks, "unknown_source"), rejected(hooks, "malformed_json")
    hooks.post("/collect/order/nope", json={})
    hooks.post("/collect/order/hooks", content=b"{", headers={"content-type": "application/json"})
    hooks.post("/collect/order/hooks", content=b"{", headers={"content-type": "application/json"})
    assert rejected(hooks, "unknown_source") == unknown + 1
    assert rejected(hooks, "malformed_json") == malformed + 2
