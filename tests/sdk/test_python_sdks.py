"""The real Python SDKs (segment-analytics-python, rudder-sdk-python, posthog), unchanged,
pointed at a real server on a loopback port, on both backends: what they send is stored once,
a retry is deduplicated, anonymous events are linked after identify, aliased profiles merge."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, all_events, create_source, start_server
from tests.pg import backend_params, fresh_database_url


@pytest.fixture(scope="module", params=backend_params(BACKENDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server per backend for the module: each test uses its own source."""
    folder = tmp_path_factory.mktemp(f"sdk-{request.param}")
    if request.param == "sqlite":
        live = start_server(folder / "data", folder / "server.log")
        try:
            yield live
        finally:
            live.stop()
        return
    with fresh_database_url() as url:
        live = start_server(folder / "data", folder / "server.log", EVENTSTITCH_DATABASE_URL=url)
        try:
            yield live
        finally:
            live.stop()


def tracker(client: httpx.Client, source_id: str) -> str:
    key: str = create_source(client, id=source_id, kind="tracker")["write_key"]
    return key


def live_profile(client: httpx.Client, profile_id: str) -> str:
    body = client.get(f"/api/profiles/{profile_id}").json()
    survivor: str = body.get("profile", body)["id"]
    return survivor


def check_story(
    client: httpx.Client,
    source_id: str,
    *,
    track_type: str,
    gzip: bool = False,
    email: str = "bob@example.com",
) -> None:
    """What every SDK's story must have left: the tracked event once (the retry added
    nothing), the page, the anonymous events linked to the identified profile, and the
    other profile merged into it by the alias."""
    events = all_events(client, source_id=source_id)
    encodings = {e["context"]["headers"].get("content-encoding") for e in events}
    assert encodings == ({"gzip"} if gzip else {None}), encodings
    types = sorted(e["type"] for e in events)
    assert types.count(track_type) == 1, types
    assert "page" in types
    assert "alias" in types
    anonymous = [e for e in events if e["type"] in (track_type, "page")]
    profiles = {live_profile(client, e["profile_id"]) for e in anonymous if e["profile_id"]}
    assert len(profiles) == 1, anonymous
    assert all(e["profile_id"] for e in anonymous), anonymous
    (user,) = profiles
    everyone = {live_profile(client, e["profile_id"]) for e in events if e["profile_id"]}
    assert everyone == {user}, "the aliased profile was not merged"
    found = client.get("/api/profiles", params={"identifier": f"email:{email}"}).json()
    assert [live_profile(client, p["id"]) for p in found["profiles"]] == [user]


def segment_story(client_class: Callable[..., Any], key: str, url: str, *, gzip: bool) -> None:
    errors: list[Any] = []
    sdk = client_class(
        key,
        host=url,
        sync_mode=True,
        gzip=gzip,
        max_retries=0,
        on_error=lambda error, _batch: errors.append(error),
    )
    for _ in range(2):  # the same messageId twice: an SDK's retry
        sdk.track(
            anonymous_id="anon-1",
            event="Signed Up",
            properties={"plan": "pro"},
            message_id="msg-signed-up",
        )
    sdk.page(anonymous_id="anon-1", name="Home", properties={"path": "/"})
    sdk.identify(user_id="user-1", anonymous_id="anon-1", traits={"email": "ann@example.com"})
    sdk.identify(anonymous_id="anon-2", traits={"email": "bob@example.com"})
    sdk.alias(previous_id="anon-2", user_id="user-1")
    sdk.flush()
    assert errors == []


@pytest.fixture(autouse=True)
def sdk_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The SDKs swallow what goes wrong and log it: a logged error fails the test."""
    with caplog.at_level(logging.WARNING):
        yield
    logged = [r.getMessage() for r in caplog.get_records("call") if r.levelno >= logging.WARNING]
    assert logged == []


def test_segment_analytics_python(server: LiveServer) -> None:
    from segment.analytics.client import Client

    with server.client() as client:
        key = tracker(client, "segment-py")
        segment_story(Client, key, server.url, gzip=True)
        check_story(client, "segment-py", track_type="signed-up", gzip=True)


def test_rudder_sdk_python(server: LiveServer) -> None:
    from rudderstack.analytics.client import Client

    with server.client() as client:
        key = tracker(client, "rudder-py")
        segment_story(Client, key, server.url, gzip=True)  # Rudder gzips by default
        check_story(client, "rudder-py", track_type="signed-up", gzip=True)


@pytest.mark.parametrize("mode", ["v0", "v1"])
def test_posthog_python(server: LiveServer, mode: str) -> None:
    from posthog import Posthog

    source_id = f"posthog-py-{mode}"
    with server.client() as client:
        key = tracker(client, source_id)
        errors: list[Any] = []
        sdk = Posthog(
            key,
            on_error=lambda error, _batch: errors.append(error),
            host=server.url,
            sync_mode=True,
            gzip=mode == "v0",
            capture_mode=mode,
            max_retries=0,
        )
        retried = str(uuid.uuid4())
        for _ in range(2):
            sdk.capture("Signed Up", distinct_id="anon-1", uuid=retried)
        sdk.capture("$pageview", distinct_id="anon-1", properties={"$current_url": "/"})
        sdk.capture("$identify", distinct_id="user-1", properties={"$anon_distinct_id": "anon-1"})
        # An email no other story sends: only this `set()` (which posthog-python sends as a
        # `$set` beside `properties`) can give it to the profile.
        email = f"bob-{mode}@example.com"
        sdk.set(distinct_id="anon-2", properties={"email": email})
        sdk.alias(previous_id="anon-2", distinct_id="user-1")
        sdk.flush()
        sdk.shutdown()
        assert errors == []
        check_story(client, source_id, track_type="signed-up", gzip=mode == "v0", email=email)


def test_the_server_log_holds_no_failure(server: LiveServer) -> None:
    assert "Traceback" not in Path(server.log_path).read_text()
