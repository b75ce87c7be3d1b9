"""Helpers shared by the identity tests: posting events, reading profiles, running a backfill.

Everything goes through the public API, the CLI or a service function, on real storage.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.cli.main import cli
from eventstitch.config import Config
from eventstitch.identity import service as identity_service
from tests.conftest import point_cli_at, stored_events

EMAIL_RULE = {"path": "email", "kind": "email", "create_profile": True}
BRIEF_EXAMPLE = {"url": "https://example.com", "user": "John", "email": "a@a.com"}


def collect(
    client: Any, source_id: str, body: Any, event_type: str = "page-view", **kwargs: Any
) -> dict[str, Any]:
    """POST one event to the webhook bridge; the answer, which must be 200."""
    if "data" in kwargs or "content" in kwargs:
        answer = client.post(f"/collect/{event_type}/{source_id}", **kwargs)
    else:
        answer = client.post(f"/collect/{event_type}/{source_id}", json=body, **kwargs)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def track(client: Any, payload: dict[str, Any], **params: str) -> dict[str, Any]:
    """POST a tracker payload to /track; the answer, which must be 200."""
    answer = client.post("/track", json=payload, params=params)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def event(client: Any, event_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/events/{event_id}")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def profile(client: Any, profile_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/profiles/{profile_id}")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def find(client: Any, identifier: str) -> list[dict[str, Any]]:
    """The profiles `GET /api/profiles?identifier=` answers (empty when nobody holds it)."""
    answer = client.get("/api/profiles", params={"identifier": identifier})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["profiles"]
    return found


def owner(client: Any, identifier: str) -> str | None:
    """The id of the live profile holding an identifier, or None."""
    found = find(client, identifier)
    assert len(found) <= 1, found
    return found[0]["id"] if found else None


def identifiers(body: dict[str, Any]) -> set[str]:
    """A profile's identifiers as `kind:value` strings."""
    return {f"{i['kind']}:{i['value']}" for i in body["identifiers"]}


def live_id(client: Any, profile_id: str) -> str:
    """Follow `merged_into` from a profile id to the live profile."""
    seen: set[str] = set()
    while True:
        body = profile(client, profile_id)
        if body["merged_into"] is None:
            return profile_id
        assert profile_id not in seen, f"merge cycle through {profile_id}"
        seen.add(profile_id)
        profile_id = body["merged_into"]


def system_events(client: Any, event_type: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"source_id": "system"}
    if event_type is not None:
        params["type"] = event_type
    return stored_events(client, **params)


def set_rules(client: Any, source_id: str, **fields: Any) -> dict[str, Any]:
    answer = client.patch(f"/api/sources/{source_id}", json=fields)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def backfill_in_app(
    client: TestClient,
    source_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Run the backfill service on the app's own storage, on the app's event loop."""
    app = client.app
    assert isinstance(app, EventstitchApp)
    call = functools.partial(
        identity_service.backfill, ctx=app.ctx, source_id=source_id, progress=progress
    )
    report: dict[str, int] = client.portal.call(call)  # type: ignore[union-attr]
    return report


def cli_json(monkeypatch: pytest.MonkeyPatch, config: Config, *args: str) -> Any:
    """Run `eventstitch ARGS --json` on the store `config` points at; its JSON output."""
    point_cli_at(monkeypatch, config)
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)
