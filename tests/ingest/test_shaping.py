"""Shaping per source over real HTTP on both backends, with deliveries written after the
senders' public docs: form payloads, type headers, arrays split into events, per-element
delivery ids, bracket keys, redactions kept out of events, the quarantine and exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest

from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, all_events, assert_error_shape, start_server
from tests.pg import backend_params, fresh_database_url

pytestmark = pytest.mark.e2e  # a real server per backend

SPLIT_LIMIT = 5
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module", params=backend_params(BACKENDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("shaping")
    with fresh_database_url() if request.param == "postgres" else nullcontext("") as url:
        env = {"EVENTSTITCH_DATABASE_URL": url} if url else {}
        live = start_server(
            folder / "data",
            folder / "server.log",
            EVENTSTITCH_MAX_SPLIT_EVENTS=str(SPLIT_LIMIT),
            **env,
        )
        _ENVS[id(live)] = env
        try:
            yield live
        finally:
            live.stop()


_ENVS: dict[int, dict[str, str]] = {}


def _server_env(server: LiveServer) -> dict[str, str]:
    return _ENVS.get(id(server), {})


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def shaped(http: httpx.Client, source_id: str, **shaping: Any) -> None:
    answer = http.post(
        "/api/sources", json={"id": source_id, "name": source_id, "shaping": shaping}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["shaping"]["redact"] == shaping.get("redact", [])


def sendgrid_events(count: int, *, first: int = 0) -> list[dict[str, Any]]:
    kinds = ["processed", "delivered", "open", "click", "bounce"]
    return [
        {
            "email": f"user{n}@example.com",
            "timestamp": 1513299569 + n,
            "event": kinds[n % len(kinds)],
            "sg_event_id": f"sg-{n}",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        }
        for n in range(first, first + count)
    ]


def test_sendgrid_array_becomes_one_event_each_and_a_redelivery_stores_nothing(
    http: httpx.Client,
) -> None:
    shaped(http, "sendgrid", split="$", event_type_from="event", delivery_id_from="sg_event_id")
    delivery = sendgrid_events(SPLIT_LIMIT)  # at the limit
    answer = http.post("/collect/email/sendgrid", json=delivery)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["ids"]) == SPLIT_LIMIT
    assert body["duplicates"] == 0
    stored = all_events(http, source_id="sendgrid")
    assert sorted(e["type"] for e in stored) == sorted(d["event"] for d in delivery)
    assert {e["properties"]["sg_event_id"] for e in stored} == {d["sg_event_id"] for d in delivery}
    again = http.post("/collect/email/sendgrid", json=delivery).json()
    assert again["ids"] == body["ids"]
    assert again["duplicates"] == SPLIT_LIMIT
    assert len(all_events(http, source_id="sendgrid")) == SPLIT_LIMIT


def test_a_split_over_the_limit_is_refused_whole(http: httpx.Client) -> None:
    shaped(http, "sendgrid-big", split="$", delivery_id_from="sg_event_id")
    error = assert_error_shape(
        http.post("/collect/email/sendgrid-big", json=sendgrid_events(SPLIT_LIMIT + 1)), 413
    )
    assert error["errors"] == [
        {"field": "shaping.split", "count": SPLIT_LIMIT + 1, "limit": SPLIT_LIMIT}
    ]
    assert all_events(http, source_id="sendgrid-big") == []


def test_alertmanager_alerts_keep_the_delivery_beside_each(http: httpx.Client) -> None:
    shaped(
        http, "alerts", split="alerts", event_type_from="status", redact=["_delivery.externalURL"]
    )
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighLatency", "severity": "page"},
        "annotations": {"summary": "p99 over 2 s"},
        "startsAt": "2024-05-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "c2a1f3",
    }
    delivery = {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "status": "firing",
        "receiver": "eventstitch",
        "groupLabels": {"alertname": "HighLatency"},
        "externalURL": "http://alertmanager.internal:9093",
        "alerts": [alert, {**alert, "status": "resolved", "fingerprint": "d4e5"}],
    }
    answer = http.post("/collect/alert/alerts", json=delivery)
    assert answer.status_code == 200, answer.text
    assert answer.json()["types"] == ["firing", "resolved"]
    stored = sorted(all_events(http, source_id="alerts"), key=lambda e: e["id"])
    assert [e["properties"]["fingerprint"] for e in stored] == ["c2a1f3", "d4e5"]
    for event in stored:
        assert event["properties"]["_delivery"]["receiver"] == "eventstitch"
        assert "alerts" not in event["properties"]["_delivery"]
        assert "externalURL" not in event["properties"]["_delivery"]


def test_github_form_payload_with_its_event_header(http: httpx.Client) -> None:
    shaped(
        http,
        "github",
        event_type_from="header:X-GitHub-Event",
        form_json_field="payload",
        delivery_id_from="header:X-GitHub-Delivery",
    )
    push = {
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "0000000000000000000000000000000000000000",
        "repository": {"id": 1296269, "full_name": "octocat/Hello-World"},
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
    }
    headers = {**FORM, "X-GitHub-Event": "push", "X-GitHub-Delivery": "72d3162e-cc78-11e3"}
    body = urlencode({"payload": json.dumps(push)})
    answer = http.post("/collect/github/github", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["type"] == "push"
    (event,) = all_events(http, source_id="github")
    assert event["properties"]["ref"] == "refs/heads/main"
    assert event["properties"]["repository"]["full_name"] == "octocat/Hello-World"
    again = http.post("/collect/github/github", content=body, headers=headers).json()
    assert again["duplicate"] is True
    assert again["id"] == event["id"]


def test_shopify_topic_header_gives_the_slash_type(http: httpx.Client) -> None:
    shaped(http, "shop", event_type_from="header:X-Shopify-Topic")
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": "x.myshopify.com"}
    answer = http.post(
        "/collect/shopify/shop",
        json={"id": 820982911946154508, "email": "jon@example.com"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["type"] == "orders/create"
    error = assert_error_shape(
        http.post("/collect/shopify/shop", json={}, headers={"X-Shopify-Topic": "orders//x"}), 400
    )
    assert error["errors"][0]["from"] == "header:X-Shopify-Topic"


def test_mailchimp_bracket_keys_nest_and_redacted_fields_are_absent(http: httpx.Client) -> None:
    shaped(http, "mailchimp", bracket_keys=True, event_type_from="type", redact=["data.ip_opt"])
    form = {
        "type": "subscribe",
        "fired_at": "2009-03-26 21:35:57",
        "data[id]": "8a25ff1d98",
        "data[email]": "api@mailchimp.com",
        "data[ip_opt]": "10.20.10.30",
        "data[merges][EMAIL]": "api@mailchimp.com",
        "data[merges][FNAME]": "Mailchimp",
        "data[interests][]": "Group1",
    }
    body = urlencode(form) + "&" + urlencode({"data[interests][]": "Group2"})
    answer = http.post("/collect/list/mailchimp", content=body, headers=FORM)
    assert answer.status_code == 200, answer.text
    (event,) = all_events(http, source_id="mailchimp")
    assert event["type"] == "subscribe"
    assert event["properties"]["data"]["merges"] == {
        "EMAIL": "api@mailchimp.com",
        "FNAME": "Mailchimp",
    }
    assert event["properties"]["data"]["interests"] == ["Group1", "Group2"]
    assert "ip_opt" not in event["properties"]["data"]


def test_an_export_holds_the_shaping_and_no_redacted_value(
    server: LiveServer, http: httpx.Client
) -> None:
    """Its own sources and events (tests of a module may run in different processes)."""
    shaped(http, "mc-export", bracket_keys=True, event_type_from="type", redact=["data.ip_opt"])
    form = {"type": "subscribe", "data[email]": "api@mailchimp.com", "data[ip_opt]": "10.20.10.30"}
    answer = http.post("/collect/list/mc-export", content=urlencode(form), headers=FORM)
    assert answer.status_code == 200, answer.text
    shaped(http, "slack-export", form_json_field="payload", redact=["token"])
    payload = {"type": "block_actions", "token": "verif-token-123", "user": {"id": "U1"}}
    body = urlencode({"payload": json.dumps(payload)})
    answer = http.post("/collect/action/slack-export", content=body, headers=FORM)
    assert answer.status_code == 200, answer.text
    env = {**os.environ, "EVENTSTITCH_DATA_DIR": str(server.data_dir)}
    url = _server_env(server).get("EVENTSTITCH_DATABASE_URL")
    if url:
        env["EVENTSTITCH_DATABASE_URL"] = url
    done = subprocess.run(
        [sys.executable, "-m", "eventstitch", "export"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "10.20.10.30" not in text
    assert "verif-token-123" not in text
    assert '"bracket_keys":true' in text.replace(" ", "")


def test_a_redacted_value_never_reaches_the_quarantine(http: httpx.Client) -> None:
    shaped(http, "slack", form_json_field="payload", redact=["token"], event_type_from="type")
    payload = {"type": "block_actions", "token": "verif-token-123", "user": {"id": "U1"}}
    body = urlencode({"payload": json.dumps(payload)})
    assert http.patch("/api/sources/slack", json={"enabled": False}).status_code == 200
    assert_error_shape(http.post("/collect/slack/slack", content=body, headers=FORM), 403)
    (kept,) = http.get("/api/rejections", params={"source_id": "slack"}).json()["rejections"]
    record = http.get(f"/api/rejections/{kept['id']}").json()
    assert "verif-token-123" not in json.dumps(record)
    assert http.patch("/api/sources/slack", json={"enabled": True}).status_code == 200
    assert http.post(f"/api/rejections/{kept['id']}/replay").status_code == 200
    (event,) = all_events(http, source_id="slack")
    assert event["type"] == "block_actions"
    assert "token" not in event["properties"]


@pytest.mark.parametrize(
    ("shaping", "field"),
    [
        ({"event_type_from": "header:"}, "event_type_from"),
        ({"split": "a..b"}, "split"),
        ({"redact": ["p"] * 51}, "redact"),
        ({"delivery_id_from": "x" * 200}, "delivery_id_from"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_a_bad_shaping_is_refused_naming_the_field(
    http: httpx.Client, shaping: dict[str, Any], field: str
) -> None:
    answer = http.post("/api/sources", json={"name": "x", "shaping": shaping})
    error = assert_error_shape(answer, 422)
    assert field in json.dumps(error["errors"])
