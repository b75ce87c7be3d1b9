"""The quarantine over the API, on both backends: every refused ingest request is kept once,
with its reason and what it carried, nothing reaches the events, and a kept request can be
replayed once its source is fixed."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config
from eventstitch.rejections.scrub import HEADERS_KEPT_WITHOUT_SOURCE
from tests.conftest import API_TOKEN, all_events, assert_error_shape, create_source, make_config

JSON = {"content-type": "application/json"}


def rejections(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/rejections", params={"limit": 1000, **params})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["rejections"]
    return found


@pytest.fixture
def hooks(client: TestClient) -> TestClient:
    create_source(client, id="hooks")
    create_source(client, id="off", enabled=False)
    create_source(client, id="web", kind="tracker")
    return client


REFUSALS = [
    # (method, path, body, headers, status, reason, source_id)
    ("POST", "/collect/order/hooks", b'{"a": 1,', JSON, 400, "malformed_json", "hooks"),
    ("POST", "/collect/order/hooks", b"<a/>", {"content-type": "text/xml"}, 415,
     "unsupported_media_type", "hooks"),
    ("POST", "/collect/order/hooks", b"[" * 40 + b"]" * 40, JSON, 400, "body_too_deep", "hooks"),
    ("POST", "/collect/order/nope", b"{}", JSON, 404, "unknown_source", "nope"),
    ("POST", "/collect/order/off", b'{"n": 1}', JSON, 403, "disabled_source", "off"),
    ("POST", "/collect/order/web", b"{}", JSON, 403, "wrong_source_kind", "web"),
    ("POST", "/collect/bad$type/hooks", b"{}", JSON, 400, "bad_event_type", "hooks"),
    ("PUT", "/collect/order/hooks", b"{}", JSON, 405, "method_not_allowed", "hooks"),
    ("GET", "/collect/order/nope?a=1", b"", {}, 404, "unknown_source", "nope"),
    ("POST", "/track", b'{"source": ', JSON, 400, "malformed_json", None),
    ("POST", "/track", b'{"source": {"id": "web"}, "events": [{}]}', JSON, 422,
     "bad_payload", "web"),
    ("POST", "/track", b'{"source": {"id": "gone"}, "events": [{"type": "view"}]}', JSON, 404,
     "unknown_source", "gone"),
    ("POST", "/track", b'{"source": {"id": "hooks"}, "events": [{"type": "view"}]}', JSON, 403,
     "wrong_source_kind", "hooks"),
    ("GET", "/track", b"", {}, 405, "method_not_allowed", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "reason", "source_id"), REFUSALS
)
def test_each_refusal_is_kept_once_with_its_reason_and_stores_no_event(
    hooks: TestClient,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
    source_id: str | None,
) -> None:
    before = len(all_events(hooks))
    sent = {**headers, "X-Hub-Signature-256": "sha256=abc", "X-Trace": "t-1"}
    answer = hooks.request(method, path, content=body or None, headers=sent)
    error = assert_error_shape(answer, status)
    assert len(all_events(hooks)) == before

    [kept] = rejections(hooks)
    assert kept["reason"] == reason
    assert kept["status"] == status
    assert kept["error"] == error["error"]
    assert kept["errors"] == error["errors"]
    assert kept["source_id"] == source_id
    assert kept["method"] == method
    assert kept["path"] == path.split("?")[0]
    assert kept["query"] == (path.split("?")[1] if "?" in path else "")
    assert kept["route"] == ("track" if path.startswith("/track") else "collect")
    if source_id in ("hooks", "off", "web"):
        assert kept["headers"]["x-trace"] == "t-1"
    else:  # no source known: only harmless headers, since any other may carry some token
        assert set(kept["headers"]) <= HEADERS_KEPT_WITHOUT_SOURCE
    assert "authorization" not in kept["headers"]  # the test client sends the API token
    assert "x-hub-signature-256" not in kept["headers"]
    assert "body" not in kept  # listings leave bodies out
    whole = hooks.get(f"/api/rejections/{kept['id']}").json()
    assert whole == {**kept, "body": whole["body"], "body_encoding": whole["body_encoding"]}
    if whole["body_size"] is not None:  # read before the refusal
        assert whole["body"].encode() == body
        assert whole["body_size"] == len(body)
    assert whole["body_truncated"] is False


def test_a_body_over_the_cap_is_cut_and_its_size_kept(tmp_path: Path) -> None:
    config = make_config(tmp_path, rejections_max_body_bytes=100)
    with TestClient(EventstitchApp(config)) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks")
        body = b'{"pad": "' + b"x" * 300 + b'"'  # malformed: no closing brace
        assert_error_shape(client.post("/collect/order/hooks", content=body, headers=JSON), 400)
        [kept] = rejections(client)
        whole = client.get(f"/api/rejections/{kept['id']}").json()
        assert whole["body"].encode() == body[:100]
        assert whole["body_size"] == len(body)
        assert whole["body_truncated"] is True

        replay = client.post(f"/api/rejections/{kept['id']}/replay")
        error = assert_error_shape(replay, 409)
        assert "truncated" in error["error"]
        assert "100 of 310 bytes" in error["error"]


def test_a_body_over_the_ingest_limit_is_kept_as_truncated_and_cannot_be_replayed(
    tmp_path: Path,
) -> None:
    with TestClient(EventstitchApp(make_config(tmp_path, max_body_bytes=50))) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks")
        assert_error_shape(client.post("/collect/order/hooks", json={"a": "x" * 100}), 413)
        [kept] = rejections(client)
        assert kept["reason"] == "body_too_large"
        assert kept["body_truncated"] is True
        assert kept["body_size"] == len(b'{"a":"' + b"x" * 100 + b'"}')
        assert_error_shape(client.post(f"/api/rejections/{kept['id']}/replay"), 409)


def test_a_body_that_is_not_utf8_is_shown_in_base64(hooks: TestClient) -> None:
    body = b'{"a": "\xff"}'
    headers = {"content-type": "application/json; charset=ascii"}
    assert_error_shape(hooks.post("/collect/order/hooks", content=body, headers=headers), 400)
    [kept] = rejections(hooks)
    whole = hooks.get(f"/api/rejections/{kept['id']}").json()
    assert whole["body_encoding"] == "base64"
    assert base64.b64decode(whole["body"]) == body


def test_listing_filters_and_pages_newest_first(hooks: TestClient) -> None:
    sent = ["nope", "off", "nope", "off", "nope"]
    for n, source_id in enumerate(sent):
        hooks.post(f"/collect/order/{source_id}", json={"n": n})
    listed = rejections(hooks)
    assert [r["source_id"] for r in listed] == sent[::-1]
    ids = [r["id"] for r in listed]
    assert ids == sorted(ids, reverse=True)

    assert [r["id"] for r in rejections(hooks, reason="disabled_source")] == [ids[1], ids[3]]
    assert len(rejections(hooks, source_id="nope")) == 3
    assert len(rejections(hooks, source_id=["nope", "off"], reason="unknown_source")) == 3
    assert rejections(hooks, reason="malformed_json") == []

    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = hooks.get("/api/rejections", params=params).json()
        pages.append([r["id"] for r in page["rejections"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]

    # Time bounds, compared with the times the API itself shows.
    middle = listed[2]["received_at"]
    newer = [r["id"] for r in listed if r["received_at"] >= middle]
    assert [r["id"] for r in rejections(hooks, since=middle)] == newer
    older = [r["id"] for r in listed if r["received_at"] < middle]
    assert [r["id"] for r in rejections(hooks, until=middle)] == older


def test_bad_listing_parameters_are_refused(hooks: TestClient) -> None:
    assert_error_shape(hooks.get("/api/rejections", params={"limit": 0}), 400)
    assert_error_shape(hooks.get("/api/rejections", params={"since": "soon"}), 400)
    assert_error_shape(hooks.get("/api/rejections", params={"cursor": "nonsense"}), 400)
    assert_error_shape(hooks.get("/api/rejections/nope"), 404)
    assert_error_shape(hooks.post("/api/rejections/nope/replay"), 404)


def test_replay_after_enabling_the_source_stores_the_event_and_links_it(
    hooks: TestClient,
) -> None:
    assert_error_shape(hooks.post("/collect/order/off?x=1", json={"n": 7}), 403)
    [kept] = rejections(hooks)

    again = hooks.post(f"/api/rejections/{kept['id']}/replay")
    assert_error_shape(again, 403)  # still disabled: refused again, nothing new kept
    assert [r["id"] for r in rejections(hooks)] == [kept["id"]]
    assert rejections(hooks)[0]["replayed_at"] is None

    assert hooks.patch("/api/sources/off", json={"enabled": True}).status_code == 200
    replay = hooks.post(f"/api/rejections/{kept['id']}/replay")
    assert replay.status_code == 200, replay.text
    answer = replay.json()
    assert answer["ok"] is True
    assert answer["type"] == "order"
    event = hooks.get(f"/api/events/{answer['id']}").json()
    assert event["source_id"] == "off"
    assert event["properties"] == {"n": 7}
    assert event["context"]["query"] == "x=1"

    [marked] = rejections(hooks)
    assert marked["replayed_event_ids"] == [answer["id"]]
    assert marked["replayed_at"] is not None

    twice = hooks.post(f"/api/rejections/{kept['id']}/replay")
    error = assert_error_shape(twice, 409)
    assert "already replayed" in error["error"]
    assert error["errors"][0]["replayed_event_ids"] == [answer["id"]]
    assert len(all_events(hooks, source_id="off")) == 1


def test_replay_after_creating_the_unknown_source_stores_the_event(hooks: TestClient) -> None:
    hooks.post("/collect/signup/later", json={"email": "a@example.com"})
    hooks.post("/track", json={"source": {"id": "site"}, "events": [{"type": "view"}]})
    collect, track = sorted(rejections(hooks), key=lambda r: r["route"])
    create_source(hooks, id="later")
    create_source(hooks, id="site", kind="tracker")

    answer = hooks.post(f"/api/rejections/{collect['id']}/replay").json()
    assert hooks.get(f"/api/events/{answer['id']}").json()["properties"] == {
        "email": "a@example.com"
    }
    tracked = hooks.post(f"/api/rejections/{track['id']}/replay")
    assert tracked.status_code == 200, tracked.text
    [stored] = tracked.json()["events"]
    assert tracked.json()["source"] == {"id": "site"}
    assert hooks.get(f"/api/events/{stored['id']}").json()["type"] == "view"
    by_route = {r["route"]: r for r in rejections(hooks)}
    assert by_route["track"]["replayed_event_ids"] == [stored["id"]]
    assert by_route["collect"]["replayed_event_ids"] == [answer["id"]]


def test_replay_keeps_the_delivery_id_so_a_delivery_stored_meanwhile_is_not_stored_twice(
    hooks: TestClient,
) -> None:
    delivery = {"Idempotency-Key": "d-1"}
    assert_error_shape(hooks.post("/collect/order/off", json={"n": 1}, headers=delivery), 403)
    [kept] = rejections(hooks)
    hooks.patch("/api/sources/off", json={"enabled": True})
    first = hooks.post("/collect/order/off", json={"n": 1}, headers=delivery).json()
    replay = hooks.post(f"/api/rejections/{kept['id']}/replay").json()
    assert replay["duplicate"] is True
    assert replay["id"] == first["id"]
    assert len(all_events(hooks, source_id="off")) == 1


def test_recorded_rejections_are_counted_in_metrics(hooks: TestClient) -> None:
    def value(name: str) -> float:
        for line in hooks.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    recorded = value("eventstitch_rejections_recorded_total")
    hooks.post("/collect/order/nope", json={})
    rejections(hooks)  # a listing writes what waits first
    assert value("eventstitch_rejections_recorded_total") == recorded + 1


def test_the_rejection_routes_are_guarded_and_listed(config: Config) -> None:
    from tests.sources.test_api_guard import api_routes

    routes = api_routes(config)
    for expected in [
        ("GET", "/api/rejections"),
        ("GET", "/api/rejections/x"),
        ("POST", "/api/rejections/x/replay"),
    ]:
        assert expected in routes


def test_the_count_bound_keeps_the_newest_and_the_answer_counts_the_rest(tmp_path: Path) -> None:
    with TestClient(EventstitchApp(make_config(tmp_path, rejections_max_rows=3))) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        for n in range(5):
            client.post(f"/collect/order/nope-{n}", json={})
            client.get("/api/rejections")  # written one by one, so each write applies the bound
        page = client.get("/api/rejections").json()
        assert [r["source_id"] for r in page["rejections"]] == ["nope-4", "nope-3", "nope-2"]
        assert page["dropped"] == {"max_rows": 2}
        assert page["dropped_total"] == 2


def test_a_replay_answers_exactly_what_ingest_answers(hooks: TestClient) -> None:
    hooks.post("/collect/order/off", json={"n": 1})
    [kept] = rejections(hooks)
    hooks.patch("/api/sources/off", json={"enabled": True})
    direct = hooks.post("/collect/order/off", json={"n": 2}).json()
    replayed = hooks.post(f"/api/rejections/{kept['id']}/replay").json()
    assert set(replayed) == set(direct)
    assert {k: v for k, v in replayed.items() if k != "id"} == {
        k: v for k, v in direct.items() if k != "id"
    }


def test_a_refused_get_is_replayed_from_its_query_string(hooks: TestClient) -> None:
    assert_error_shape(hooks.get("/collect/visit/later?page=home&tag=a&tag=b"), 404)
    [kept] = rejections(hooks)
    assert kept["method"] == "GET"
    create_source(hooks, id="later")
    answer = hooks.post(f"/api/rejections/{kept['id']}/replay").json()
    event = hooks.get(f"/api/events/{answer['id']}").json()
    assert event["properties"] == {"page": "home", "tag": ["a", "b"]}
    assert event["context"]["method"] == "GET"
