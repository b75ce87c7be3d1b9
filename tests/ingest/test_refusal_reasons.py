"""The refusal reasons of docs/api.md are what the ingest routes answer: every reason in the
table is produced by a request over HTTP and counted under that reason with the documented
status, and every reason the ingest code can raise is in the table."""

from __future__ import annotations

import ast
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, create_source, make_config, start_server
from tests.pg import backend_params, fresh_database_url

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "eventstitch"
JSON = {"content-type": "application/json"}
SECRET = "a-secret-of-sixteen-or-more"

# The code the ingest routes run, where their refusals are raised: whole modules, or only the
# named functions of a module that also serves the management API.
INGEST_CODE: dict[str, tuple[str, ...] | None] = {
    "ingest/routes.py": None,
    "ingest/service.py": None,
    "ingest/storing.py": None,
    "ingest/parsing.py": None,
    "ingest/tracking.py": None,
    "ingest/shaping.py": None,
    "ingest/encodings.py": None,
    "ingest/handshakes.py": None,
    "ingest/wrong_routes.py": None,
    "sources/signatures.py": None,
    "sources/service.py": ("get_accepting", "admit"),
    "protocol.py": None,
}


def documented_reasons() -> dict[str, int]:
    """Reason to status, from the refusal table of docs/api.md (one reason a row)."""
    text = (ROOT / "docs" / "api.md").read_text()
    table = text[text.index("**Refusals** of `/collect` and `/track`") :]
    table = table[: table.index("\n\n", table.index("| status | reason |"))]
    rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", table, re.MULTILINE)
    assert rows, "the refusal table of docs/api.md was not found"
    return {reason: int(status) for status, reason in rows}


def _error_defaults() -> dict[str, str]:
    """The reason each exception class of errors.py answers when raised without one."""
    defaults = {}
    for node in ast.parse((SRC / "errors.py").read_text()).body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.Assign) and _names(item.targets) == ["reason"]:
                    assert isinstance(item.value, ast.Constant)
                    defaults[node.name] = item.value.value
    return defaults


def _names(targets: list[ast.expr]) -> list[str]:
    return [t.id for t in targets if isinstance(t, ast.Name)]


def code_reasons() -> set[str]:
    """Every reason the ingest code can raise, found in its source: `reason="..."` given to a
    call, a class's `reason = "..."`, a string given positionally to a parameter named
    `reason`, the values of a `..._REASONS` mapping, and the default reason of an errors.py
    class raised without one."""
    defaults = _error_defaults()
    found: set[str] = set()
    for relative, functions in INGEST_CODE.items():
        module = ast.parse((SRC / relative).read_text())
        reason_positions = {
            f.name: [a.arg for a in f.args.args].index("reason")
            for f in ast.walk(module)
            if isinstance(f, ast.FunctionDef) and "reason" in [a.arg for a in f.args.args]
        }
        scopes: list[ast.AST] = [module]
        if functions is not None:
            scopes = [
                f for f in module.body if isinstance(f, ast.AsyncFunctionDef | ast.FunctionDef)
            ]
            scopes = [f for f in scopes if f.name in functions]  # type: ignore[union-attr]
            assert len(scopes) == len(functions), f"{relative}: not all of {functions} found"
        for scope in scopes:
            for node in ast.walk(scope):
                found |= _reasons_at(node, defaults, reason_positions)
    return found


def _reasons_at(
    node: ast.AST, defaults: dict[str, str], reason_positions: dict[str, int]
) -> set[str]:
    found: set[str] = set()
    if isinstance(node, ast.Call):
        keywords = {k.arg: k.value for k in node.keywords}
        given = keywords.get("reason")
        if isinstance(given, ast.Constant) and isinstance(given.value, str):
            found.add(given.value)
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name in defaults and "reason" not in keywords:
            found.add(defaults[name])
        position = reason_positions.get(name or "")
        if position is not None and len(node.args) > position:
            positional = node.args[position]
            if isinstance(positional, ast.Constant) and isinstance(positional.value, str):
                found.add(positional.value)
    elif isinstance(node, ast.Assign):
        names = _names(node.targets)
        if names == ["reason"] and isinstance(node.value, ast.Constant):
            found.add(node.value.value)
        if any(n.endswith("REASONS") for n in names) and isinstance(node.value, ast.Dict):
            found |= {v.value for v in node.value.values if isinstance(v, ast.Constant)}
    return found


def test_the_reasons_the_ingest_code_can_answer_are_the_documented_ones() -> None:
    documented, in_code = set(documented_reasons()), code_reasons()
    assert in_code - documented == set(), "answered by the code but not in docs/api.md"
    assert documented - in_code == set(), "in docs/api.md but raised nowhere in the ingest code"
    assert set(PRODUCERS) | set(PRODUCED_APART) == documented, "a reason without a producer"


# -- producers: one request (or a few) that each reason answers --------------------------------

Producer = Callable[[httpx.Client], httpx.Response]


def _post(path: str, body: bytes, headers: dict[str, str] | None = None) -> Producer:
    return lambda http: http.post(path, content=body, headers=headers if headers else JSON)


def _track(body: bytes, headers: dict[str, str] | None = None) -> Producer:
    return _post("/track", body, headers)


def _rate_limited(http: httpx.Client) -> httpx.Response:
    assert http.post("/collect/o/limited", json={}).status_code == 200  # its burst of one
    return http.post("/collect/o/limited", json={})


PRODUCERS: dict[str, Producer] = {
    "malformed_json": _post("/collect/o/hooks", b'{"a": 1,'),
    "bad_encoding": _post(
        "/collect/o/hooks", b'{"a": "\xff"}', {"content-type": "application/json; charset=utf-8"}
    ),
    "integer_out_of_range": _post("/collect/o/hooks", b'{"n": ' + b"9" * 400 + b"}"),
    "number_out_of_range": _post("/collect/o/hooks", b'{"x": 1e-400}'),
    "body_too_deep": _post("/collect/o/hooks", b"[" * 40 + b"]" * 40),
    "bad_event_type": _post("/collect/bad$type/hooks", b"{}"),
    "bad_delivery_id": lambda http: http.post(
        "/collect/o/hooks", json={}, headers={"Idempotency-Key": "k" * 257}
    ),
    "missing_signature": _post("/collect/push/signed", b"{}"),
    "malformed_signature": _post(
        "/collect/push/signed", b"{}", {**JSON, "X-Hub-Signature-256": "no-prefix"}
    ),
    "stale_signature": _post(
        "/collect/charge/stripe", b"{}", {**JSON, "Stripe-Signature": "t=1,v1=00"}
    ),
    "bad_signature": _post(
        "/collect/push/signed", b"{}", {**JSON, "X-Hub-Signature-256": "sha256=00"}
    ),
    "disabled_source": _post("/collect/o/off", b"{}"),
    "wrong_source_kind": _post("/collect/o/web", b"{}"),
    "cors_origin": lambda http: http.options(
        "/collect/o/hooks",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    ),
    "unknown_source": _post("/collect/o/nope", b"{}"),
    "unknown_route": _post("/collect/o", b"{}"),
    "bad_content_encoding": _post(
        "/collect/o/hooks", b"not gzip at all", {**JSON, "Content-Encoding": "gzip"}
    ),
    "unsupported_content_encoding": _post(
        "/collect/o/hooks", b"{}", {**JSON, "Content-Encoding": "br"}
    ),
    "bad_handshake": _post(
        "/collect/o/hooks", b'{"type": "url_verification", "challenge": "", "token": "t"}'
    ),
    "bad_verify_token": lambda http: http.get(
        "/collect/o/signed",
        params={"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
    ),
    "handshake_refused": _post(
        "/collect/o/hooks",
        b'{"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}}',
    ),
    "method_not_allowed": lambda http: http.put("/collect/o/hooks", json={}),
    "body_too_large": _post("/collect/o/hooks", b"[" + b" " * 2048 + b"]"),
    "unsupported_media_type": _post("/collect/o/hooks", b"<a/>", {"content-type": "text/xml"}),
    "unsupported_charset": _post(
        "/collect/o/hooks", b"{}", {"content-type": "application/json; charset=klingon"}
    ),
    "bad_payload": _track(b'{"source": {"id": "web"}, "events": []}'),
    "rate_limited": _rate_limited,
    "unsigned_method": lambda http: http.get("/collect/push/signed?a=1"),
    "too_many_events": _track(
        b'{"source": {"id": "web"}, "events": [{"type": "a"}, {"type": "b"}, {"type": "c"}]}'
    ),
    "track_too_large": _track(
        b'{"source": {"id": "web"}, "context": {"page": "' + b"p" * 600 + b'"},'
        b' "events": [{"type": "a"}, {"type": "b"}]}'
    ),
    "url_too_long": _post("/collect/o/hooks?q=" + "u" * 16_384, b"{}"),
    "too_many_headers": _post("/collect/o/hooks", b"{}", {f"x-h{n}": "v" for n in range(101)}),
    "headers_too_large": _post("/collect/o/hooks", b"{}", {"x-big": "b" * 33_000}),
    "split_not_array": _post("/collect/o/split", b'{"alerts": "none"}'),
    "split_too_large": _post("/collect/o/split", b'{"alerts": [{}, {}, {}]}'),
}

PRODUCED_APART = {
    "overloaded",
    "storage_unavailable",
    "head_timeout",
    "body_timeout",
    "too_many_connections",
}
"""Reasons that need the store held or out of reach, each with its own test below, a stalled
client (`head_timeout`, `body_timeout`) or a server with few connections allowed
(`too_many_connections`): tests/test_protocol_limits.py."""


def rejected(http: httpx.Client | TestClient, reason: str) -> float:
    prefix = f'eventstitch_events_rejected_total{{reason="{reason}"}} '
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


@pytest.fixture(params=backend_params(BACKENDS))
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    settings = {
        "EVENTSTITCH_CORS_ORIGINS": "https://shop.example",
        "EVENTSTITCH_MAX_BODY_BYTES": "1024",
        "EVENTSTITCH_TRACK_MAX_EVENTS": "2",
        "EVENTSTITCH_MAX_SPLIT_EVENTS": "2",
        "EVENTSTITCH_TRACK_MAX_STORED_BYTES": "1200",
    }
    with fresh_database_url() if request.param == "postgres" else nullcontext("") as url:
        if url:
            settings["EVENTSTITCH_DATABASE_URL"] = url
        live = start_server(tmp_path / "data", tmp_path / "server.log", **settings)
        try:
            with live.client() as http:
                create_source(http, id="hooks")
                create_source(http, id="off", enabled=False)
                create_source(http, id="web", kind="tracker")
                create_source(http, id="split", shaping={"split": "alerts"})
                create_source(http, id="limited", rate_limit={"per_second": 0.001, "burst": 1})
                create_source(
                    http, id="signed", signature={"preset": "github", "secrets": [SECRET]}
                )
                create_source(
                    http, id="stripe", signature={"preset": "stripe", "secrets": [SECRET]}
                )
            yield live
        finally:
            live.stop()


def test_every_documented_reason_is_answered_with_its_status_over_http(server: LiveServer) -> None:
    statuses = documented_reasons()
    with server.client() as http:
        for reason, produce in PRODUCERS.items():
            before = rejected(http, reason)
            answer = produce(http)
            assert answer.status_code == statuses[reason], (reason, answer.text)
            assert rejected(http, reason) == before + 1, (reason, answer.text)


# -- the two that need the store held or gone -------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_storage_out_of_reach_is_storage_unavailable_on_both_ingest_routes(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/test?connect_timeout=1"
    # Not started: the store has no connection to give, as when the server went away.
    client = TestClient(EventstitchApp(make_config(tmp_path, database_url=url)))
    status = documented_reasons()["storage_unavailable"]
    for path, body in (
        ("/collect/o/hooks", b"{}"),
        ("/track", b'{"source": {"id": "web"}, "events": [{"type": "a"}]}'),
    ):
        before = rejected(client, "storage_unavailable")
        answer = client.post(path, content=body, headers=JSON)
        assert answer.status_code == status, answer.text
        assert answer.headers["retry-after"].isdigit()
        assert rejected(client, "storage_unavailable") == before + 1


def test_a_full_write_queue_is_overloaded(tmp_path: Path) -> None:
    """SQLite's write lock held from outside stalls the writer; with a queue of one, the
    requests behind it are refused at once."""
    data = tmp_path / "data"
    live = start_server(data, tmp_path / "server.log", EVENTSTITCH_QUEUE_SIZE="1")
    answers: list[httpx.Response] = []
    try:
        with live.client() as http:
            create_source(http, id="hooks")
            before = rejected(http, "overloaded")

        def send() -> None:
            with httpx.Client(base_url=live.url, timeout=30) as sender:
                answers.append(sender.post("/collect/o/hooks", json={}))

        blocker = sqlite3.connect(data / "eventstitch.db", isolation_level=None)
        threads = [threading.Thread(target=send) for _ in range(4)]
        try:
            blocker.execute("BEGIN IMMEDIATE")
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and not any(a.status_code == 503 for a in answers):
                time.sleep(0.05)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        for thread in threads:
            thread.join(timeout=30)
        refused = [a for a in answers if a.status_code == documented_reasons()["overloaded"]]
        assert refused, [a.text for a in answers]
        with live.client() as http:
            assert rejected(http, "overloaded") >= before + 1
    finally:
        live.stop()
