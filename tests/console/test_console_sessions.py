"""Console sign-in without a browser: the cookie's attributes, its expiry, CSRF, and the token
never echoed into a page."""

from __future__ import annotations

import html
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config, load_config
from tests.conftest import API_TOKEN, LiveServer, assert_error_shape, create_source, make_config

PAGES = ("/", "/sources", "/events", "/events/tail", "/refusals")


def _browser(config: Config) -> Iterator[TestClient]:
    """An in-process client that behaves like a browser: cookies kept, no bearer token."""
    with TestClient(EventstitchApp(config), follow_redirects=False) as browser:
        yield browser


@pytest.fixture
def browser(config: Config) -> Iterator[TestClient]:
    yield from _browser(config)


def _sign_in(browser: TestClient) -> str:
    """Sign in and return the page's CSRF token."""
    answer = browser.post("/signin", data={"token": API_TOKEN})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    page = browser.get("/sources")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def test_signin_cookie_is_httponly_strict_and_secure_only_behind_https(
    live_server: LiveServer,
) -> None:
    plain = httpx.post(f"{live_server.url}/signin", data={"token": API_TOKEN}, timeout=10)
    cookie = plain.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "max-age=28800" in cookie
    assert "secure" not in cookie
    # uvicorn trusts X-Forwarded-Proto from a proxy on 127.0.0.1 (FORWARDED_ALLOW_IPS widens it).
    proxied = httpx.post(
        f"{live_server.url}/signin",
        data={"token": API_TOKEN},
        headers={"X-Forwarded-Proto": "https"},
        timeout=10,
    )
    assert "secure" in proxied.headers["set-cookie"].lower()


def test_wrong_token_signs_nobody_in_and_every_page_sends_to_signin(browser: TestClient) -> None:
    answer = browser.post("/signin", data={"token": API_TOKEN + "x"})
    assert answer.status_code == 200
    assert "that is not the API token" in answer.text
    assert "set-cookie" not in answer.headers
    for path in PAGES:
        refused = browser.get(path)
        assert refused.status_code == 303, path
        assert refused.headers["location"] == "/signin"
    polled = browser.get("/events/tail", headers={"HX-Request": "true"})
    assert polled.headers["HX-Redirect"] == "/signin"


def test_pages_never_carry_the_api_token(browser: TestClient) -> None:
    _sign_in(browser)
    for path in ("/signin", *PAGES, "/docs"):
        page = browser.get(path)
        assert page.status_code == 200, path
        assert API_TOKEN not in page.text, path


def test_change_without_the_csrf_token_is_refused_and_changes_nothing(
    browser: TestClient,
) -> None:
    csrf = _sign_in(browser)
    assert browser.post("/sources", data={"name": "Kept", "id": "kept", "csrf": csrf}).status_code
    for form in ({}, {"csrf": "forged"}, {"csrf": csrf + "x"}):
        refused = browser.post("/sources/kept/delete", data=form)
        assert_error_shape(refused, 403)
    assert "kept" in browser.get("/sources").text
    by_header = browser.post("/sources/kept/delete", headers={"X-CSRF-Token": csrf})
    assert by_header.status_code == 303
    assert 'data-source="kept"' not in browser.get("/sources").text


def test_a_refused_source_form_shows_the_apis_message(browser: TestClient) -> None:
    csrf = _sign_in(browser)
    page = browser.post("/sources", data={"name": "x" * 201, "csrf": csrf})
    assert "body.name: String should have at most 200 characters" in page.text


def test_session_ends_after_console_session_seconds(tmp_path: Path) -> None:
    # 3 s, not 1: on a loaded machine a sign-in and the next page took more than a second
    for browser in _browser(make_config(tmp_path / "data", console_session_seconds=3)):
        _sign_in(browser)
        assert browser.get("/").status_code == 200
        time.sleep(4.1)  # the signature's timestamp has whole seconds
        expired = browser.get("/")
        assert expired.status_code == 303
        assert expired.headers["location"] == "/signin"


def test_signing_out_ends_the_session(browser: TestClient) -> None:
    csrf = _sign_in(browser)
    assert browser.post("/signout", data={"csrf": csrf}).status_code == 303
    assert browser.get("/").headers["location"] == "/signin"


def test_a_changed_api_token_signs_everyone_out(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for first in _browser(make_config(data)):
        _sign_in(first)
        cookies = dict(first.cookies)
    with TestClient(
        EventstitchApp(load_config({}, data_dir=data, api_token="another-token-0123")),
        follow_redirects=False,
    ) as second:
        second.cookies.update(cookies)
        assert second.get("/").headers["location"] == "/signin"


def test_console_lists_a_source_made_over_the_api(client: TestClient, browser: TestClient) -> None:
    create_source(client, id="from-api")
    _sign_in(browser)
    assert "/collect/{event_type}/from-api" in browser.get("/sources").text


def test_a_form_body_is_taken_at_its_budget_and_refused_one_byte_past(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", console_max_form_bytes=100)
    for browser in _browser(config):
        at_limit = b"token=" + b"x" * 94
        taken = browser.post(
            "/signin",
            content=at_limit,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert taken.status_code == 200
        assert "that is not the API token" in taken.text
        refused = browser.post(
            "/signin",
            content=at_limit + b"x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        body = assert_error_shape(refused, 413)
        assert body["errors"] == [{"field": "body", "limit": 100}]
        assert "set-cookie" not in refused.headers


def test_each_sources_curl_example_is_accepted_as_written(live_server: LiveServer) -> None:
    with live_server.client() as http:
        create_source(http, id="hooks")
        create_source(http, id="site", kind="tracker")
    with httpx.Client(base_url=live_server.url, timeout=10) as browser:
        browser.post("/signin", data={"token": API_TOKEN})
        page = browser.get("/sources").text
        examples = [html.unescape(e) for e in re.findall(r"<pre>(curl .*?)</pre>", page, re.S)]
    assert len(examples) == 2
    for example in examples:
        run = subprocess.run(
            [*shlex.split(example), "-s", "-o", "/dev/null", "-w", "%{http_code}"],
            capture_output=True,
            timeout=10,
            check=True,
        )
        assert run.stdout.decode().startswith("2"), (example, run.stdout)
    with live_server.client() as http:
        assert {e["source_id"] for e in http.get("/api/events").json()["events"]} >= {
            "hooks",
            "site",
        }
