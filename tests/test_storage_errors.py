"""Storage errors reach every route as their one answer (app.py): PostgreSQL out of reach is a
503 with Retry-After on every `/api` route, never a 500."""

from __future__ import annotations

import socket
from pathlib import Path

from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from tests.conftest import API_TOKEN, assert_error_shape, make_config
from tests.sources.test_api_guard import api_routes

BODIES = {"POST": {"name": "made while the database is away"}, "PATCH": {"enabled": False}}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_every_api_route_answers_503_with_retry_after_when_postgres_is_out_of_reach(
    tmp_path: Path,
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/test?connect_timeout=1"
    config = make_config(tmp_path / "data", database_url=url)
    # Not started: the store has no connection to give, as when the server went away.
    client = TestClient(EventstitchApp(config), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {API_TOKEN}"
    answered = {}
    for method, path in api_routes(config):
        answer = client.request(method, path, json=BODIES.get(method))
        answered[method, path] = answer.status_code
        assert answer.status_code != 500, (method, path, answer.text)
        if answer.status_code == 503:
            error = assert_error_shape(answer, 503)
            assert "unavailable" in error["error"]
            assert answer.headers["Retry-After"] == str(config.retry_after_seconds)
    # Identity and rejections routes used to fall through to the generic 500.
    for path in ("/api/profiles/x", "/api/rejections", "/api/sources", "/api/events"):
        assert answered["GET", path] == 503, answered
