"""Sender presets over real HTTP on both backends: a realistic delivery of every preset with
its sender's headers and signature, stored shaped, redacted, deduplicated and identified by the
preset's suggested rules; handshakes answered and not stored; a refused delivery quarantined
and an export without the redacted values; the preset shown, overridden and kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, get_args

import httpx2 as httpx
import pytest

from eventstitch.sources import presets
from eventstitch.sources.presets import SenderPresetName
from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, all_events, assert_error_shape, start_server
from tests.ingest.sender_deliveries import (
    ABSENT,
    DELIVERIES,
    FORM,
    SECRET,
    Delivery,
    at,
    fixture,
)
from tests.pg import backend_params, fresh_database_url

pytestmark = pytest.mark.e2e  # a real server per backend

SEED_KINDS = ("email", "slack_user")


@pytest.fixture(scope="module", params=backend_params(BACKENDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("presets")
    with fresh_database_url() if request.param == "postgres" else nullcontext("") as url:
        env = {"EVENTSTITCH_DATABASE_URL": url} if url else {}
        live = start_server(folder / "data", folder / "server.log", **env)
        _DATABASES[id(live)] = url
        with live.client() as http:
            rules = [{"path": k, "kind": k, "create_profile": True} for k in SEED_KINDS]
            seed = {"id": "seed", "name": "Seed", "identification": rules}
            assert http.post("/api/sources", json=seed).status_code == 201
        try:
            yield live
        finally:
            live.stop()


_DATABASES: dict[int, str] = {}


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def create(http: httpx.Client, server: LiveServer, case: Delivery, source_id: str) -> None:
    signature: dict[str, Any] = {"secrets": [SECRET], **case.signature}
    if signature.get("url") == "PUBLIC_URL":
        signature["url"] = f"{server.url}/collect/{case.path_type}/{source_id}"
    answer = http.post(
        "/api/sources", json={"id": source_id, "preset": case.preset, "signature": signature}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["preset"] == case.preset


def deliver(
    http: httpx.Client, server: LiveServer, case: Delivery, source_id: str, **extra: str
) -> httpx.Response:
    path = f"/collect/{case.path_type}/{source_id}"
    headers = {
        "Content-Type": case.content_type,
        **case.headers,
        **case.sign(case.body, case.query, server.url + path),
        **extra,
    }
    url = path + (f"?{case.query}" if case.query else "")
    return http.post(url, content=case.body, headers=headers)


def test_the_table_and_the_api_name_the_same_presets() -> None:
    assert set(get_args(SenderPresetName)) == set(presets.NAMES)


@pytest.mark.parametrize("case", DELIVERIES, ids=[d.preset for d in DELIVERIES])
def test_a_senders_delivery_is_stored_shaped_redacted_deduplicated_and_identified(
    http: httpx.Client, server: LiveServer, case: Delivery
) -> None:
    source_id = f"p-{case.preset}"
    create(http, server, case, source_id)
    kind, _, value = (case.identifier or "::").partition(":")
    if case.existing_profile:
        assert http.post("/collect/seed/seed", json={kind: value}).status_code == 200
    answer = deliver(http, server, case, source_id)
    assert answer.status_code == 200, answer.text

    events = sorted(all_events(http, source_id=source_id), key=lambda e: e["id"])
    assert [e["type"] for e in events] == list(case.types)
    first = events[0]["properties"]
    for path, expected in case.properties.items():
        assert at(first, path) == expected, path
    for event in events:
        for path in case.redacted:
            assert at(event["properties"], path) is ABSENT, path
    if case.identifier is not None:
        found = http.get("/api/profiles", params={"identifier": case.identifier}).json()
        (profile,) = found["profiles"]
        assert events[0]["profile_id"] == profile["id"]

    again = deliver(http, server, case, source_id)
    assert again.status_code == 200, again.text
    stored_again = all_events(http, source_id=source_id)
    assert len(stored_again) == len(events) * (1 if case.deduplicated else 2)


HANDSHAKES = {
    "slack": (
        "POST",
        "",
        {
            "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        },
    ),
    "zoom": (
        "POST",
        "",
        {
            "event": "endpoint.url_validation",
            "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
            "event_ts": 1714640000123,
        },
    ),
    "mailchimp": ("GET", f"token={SECRET}", None),
    "meta": ("GET", f"hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={SECRET}", None),
}


@pytest.mark.parametrize("preset", sorted(HANDSHAKES))
def test_a_presets_handshake_is_answered_and_not_stored(
    http: httpx.Client, server: LiveServer, preset: str
) -> None:
    case = next(d for d in DELIVERIES if d.preset == preset)
    source_id = f"h-{preset}"
    create(http, server, case, source_id)
    method, query, body = HANDSHAKES[preset]
    path = f"/collect/{case.path_type}/{source_id}" + (f"?{query}" if query else "")
    if method == "GET":
        answer = http.get(path)
    else:
        raw = json.dumps(body).encode()
        signed = case.sign(raw, "", "")
        answer = http.post(
            path, content=raw, headers={"Content-Type": "application/json", **signed}
        )
    assert answer.status_code == 200, answer.text
    if preset == "slack":
        assert answer.json() == {"challenge": body["challenge"]}  # type: ignore[index]
    if preset == "meta":
        assert answer.text == "1158201444"
    if preset == "zoom":
        assert answer.json()["plainToken"] == "qgg8vlvZRS6UYooatFL8Aw"
    assert all_events(http, source_id=source_id) == []


def test_a_refused_delivery_is_quarantined_and_exported_without_redacted_values(
    http: httpx.Client, server: LiveServer, tmp_path: Path
) -> None:
    case = next(d for d in DELIVERIES if d.preset == "shopify")
    create(http, server, case, "q-shopify")
    refused = deliver(http, server, case, "q-shopify", **{"X-Shopify-Hmac-Sha256": "bm9wZQ=="})
    assert_error_shape(refused, 401)
    (kept,) = http.get("/api/rejections", params={"source_id": "q-shopify"}).json()["rejections"]
    record = json.dumps(http.get(f"/api/rejections/{kept['id']}").json())
    assert "bob.norman@example.com" in record  # the delivery is kept...
    for secret in ("123456abcd", "eeafa272cebfd4b22385bc4b645e762c", "203.0.113.7"):
        assert secret not in record  # ...without what the preset redacts

    assert deliver(http, server, case, "q-shopify").status_code == 200
    exported = _export(server)
    lines = [json.loads(line) for line in exported.splitlines() if line.strip()]
    (source,) = [x["source"] for x in lines if x.get("source", {}).get("id") == "q-shopify"]
    assert source["preset"] == "shopify"
    for secret in ("123456abcd", "203.0.113.7", "s3cr3tPW", "XXYYZZ-legacy-verification"):
        assert secret not in exported

    # Imported elsewhere, the source still says which preset it came from.
    backup = tmp_path / "backup.jsonl"
    backup.write_text(exported)
    env = {**os.environ, "EVENTSTITCH_DATA_DIR": str(tmp_path / "restored")}
    env.pop("EVENTSTITCH_DATABASE_URL", None)
    for command in (["import", str(backup)], ["sources", "show", "q-shopify", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "eventstitch", *command],
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    restored = json.loads(done.stdout)
    assert restored["preset"] == "shopify"
    assert restored["shaping"]["redact"] == source["shaping"]["redact"]


def _export(server: LiveServer) -> str:
    env = {**os.environ, "EVENTSTITCH_DATA_DIR": str(server.data_dir)}
    url = _DATABASES.get(id(server))
    if url:
        env["EVENTSTITCH_DATABASE_URL"] = url
    done = subprocess.run(
        [sys.executable, "-m", "eventstitch", "export"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def test_what_the_request_gives_overrides_the_preset(http: httpx.Client) -> None:
    answer = http.post(
        "/api/sources",
        json={
            "id": "o-stripe",
            "preset": "stripe",
            "name": "Billing",
            "signature": {"secrets": [SECRET], "tolerance_seconds": 60},
            "shaping": {"redact": ["data.object.metadata"]},
            "identification": [],
        },
    )
    assert answer.status_code == 201, answer.text
    source = answer.json()
    assert source["name"] == "Billing"
    assert source["identification"] == []
    assert source["shaping"]["redact"] == ["data.object.metadata"]
    assert source["shaping"]["event_type_from"] == "type"  # the rest from the preset
    assert source["signature"]["preset"] == "stripe"
    assert source["signature"]["tolerance_seconds"] == 60
    changed = http.patch("/api/sources/o-stripe", json={"shaping": {"split": "$"}})
    assert changed.json()["preset"] == "stripe"  # still says where it came from


def test_a_preset_that_signs_needs_a_secret_or_an_explicit_null(http: httpx.Client) -> None:
    body = assert_error_shape(http.post("/api/sources", json={"preset": "github"}), 422)
    assert "signature" in json.dumps(body)
    unsigned = http.post("/api/sources", json={"preset": "github", "signature": None})
    assert unsigned.status_code == 201, unsigned.text
    assert unsigned.json()["signature"] is None
    unknown = assert_error_shape(http.post("/api/sources", json={"preset": "nope"}), 422)
    assert "nope" in unknown["error"] + json.dumps(unknown["errors"])
    tracker = http.post("/api/sources", json={"preset": "stripe", "kind": "tracker"})
    assert_error_shape(tracker, 422)


def test_github_default_form_content_type_unsigned_body_is_refused(
    http: httpx.Client, server: LiveServer
) -> None:
    case = next(d for d in DELIVERIES if d.preset == "github")
    create(http, server, case, "g-refused")
    body = b"payload=" + fixture("github_push")
    answer = http.post("/collect/github/g-refused", content=body, headers={"Content-Type": FORM})
    assert_error_shape(answer, 401)


def _array_of_objects(value: Any, path: tuple[str, ...] = ()) -> tuple[str, str, Any] | None:
    """The first array of objects in a payload: (its path, a scalar key of its first element,
    that element's value), depth first."""
    if isinstance(value, dict):
        for key, inner in value.items():
            found = _array_of_objects(inner, (*path, key))
            if found is not None:
                return found
    if path and isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for key, inner in value[0].items():
            if isinstance(inner, str):
                return ".".join(path), key, inner
    return None


WITH_ARRAYS = [d for d in DELIVERIES if d.preset in ("github", "shopify", "meta", "slack")]


@pytest.mark.parametrize("case", WITH_ARRAYS, ids=[d.preset for d in WITH_ARRAYS])
def test_a_field_inside_a_senders_array_can_be_filtered_and_grouped(
    http: httpx.Client, server: LiveServer, case: Delivery
) -> None:
    """GitHub's `commits`, Shopify's `line_items`, Meta's `entry`, Slack's `authorizations`:
    an element's field is reached by index or by any element, in filters and groupings."""
    source_id = f"a-{case.preset}"
    create(http, server, case, source_id)
    assert deliver(http, server, case, source_id).status_code == 200
    (event,) = all_events(http, source_id=source_id)
    found = _array_of_objects(event["properties"])
    assert found is not None, event["properties"]
    array, key, value = found

    for path in (f"properties.{array}[*].{key}", f"properties.{array}.0.{key}"):
        matching = http.get("/api/events", params={"source_id": source_id, path: value}).json()
        assert [e["id"] for e in matching["events"]] == [event["id"]], path
        other = http.get("/api/events", params={"source_id": source_id, path: value + "-not"})
        assert other.json()["events"] == [], path
    for by in (f"properties.{array}.0.{key}", f"properties.{array}[*].{key}"):
        grouped = http.get("/api/insights/counts", params={"source_id": source_id, "by": by}).json()
        assert [(r[by], r["count"]) for r in grouped["rows"]] == [(value, 1)], grouped
