"""The web console in a real headless Chromium (the system package, never a downloaded browser)
against `eventstitch serve` on a loopback port, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import httpx2 as httpx
import orjson
import pytest

from eventstitch.console.overview import REFRESH_SECONDS
from eventstitch.storage import BACKENDS
from tests.conftest import API_TOKEN, LiveServer, start_server
from tests.pg import backend_params, fresh_database_url

CHROMIUM = Path("/usr/bin/chromium")
LIVE_WITHIN_MS = 2000
OVERVIEW_REFRESH_MS = (REFRESH_SECONDS + 2) * 1000

pytestmark = pytest.mark.e2e

if not CHROMIUM.exists():  # CI installs it (.ci/run); there a missing browser is a failure
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing: the console browser tests cannot run")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Page, Request, expect, sync_playwright  # noqa: E402


@pytest.fixture(params=backend_params(BACKENDS))
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """A server on the embedded default store, or on a fresh PostgreSQL schema."""
    with fresh_database_url() if request.param == "postgres" else nullcontext("") as url:
        env = {"EVENTSTITCH_DATABASE_URL": url} if url else {}
        live = start_server(tmp_path / "data", tmp_path / "server.log", **env)
        try:
            yield live
        finally:
            live.stop()


def _sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/")
    expect(page).to_have_url(f"{url}/signin")
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("that is not the API token")
    page.fill("input[name=token]", API_TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{url}/")
    expect(page.locator("h1")).to_have_text("Overview")


def _create_source(page: Page, url: str, source_id: str) -> None:
    page.goto(f"{url}/sources")
    page.fill("input[name=name]", f"Source {source_id}")
    page.fill("input[name=id]", source_id)
    page.click("#create-source")
    expect(page.locator(f"tr[data-source={source_id}]")).to_contain_text("enabled")


def _post_webhook(url: str, source_id: str, body: dict[str, object]) -> int:
    return httpx.post(f"{url}/collect/order.paid/{source_id}", json=body, timeout=10).status_code


def test_console_flows_in_a_real_browser(server: LiveServer) -> None:
    url = server.url
    console_errors: list[str] = []
    outside: list[str] = []

    def note_request(request: Request) -> None:
        if not request.url.startswith(f"{url}/"):
            outside.append(request.url)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context()
            context.on("request", note_request)
            page = context.new_page()
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )

            _sign_in(page, url)
            [cookie] = context.cookies()
            assert cookie["httpOnly"] is True
            assert cookie["sameSite"] == "Strict"
            assert cookie["secure"] is False  # plain HTTP on loopback; HTTPS sets it
            assert API_TOKEN not in cookie["value"]

            _create_source(page, url, "shop")
            assert API_TOKEN not in page.content()
            assert "/collect/signup/shop" in (
                page.locator("tr[data-source=shop]").text_content() or ""
            )

            # The API's own message for a refused create, shown on the page.
            page.fill("input[name=name]", "Again")
            page.fill("input[name=id]", "shop")
            page.click("#create-source")
            expect(page.locator("#form-error")).to_contain_text("shop")

            # Delete with confirmation.
            _create_source(page, url, "scratch")
            page.click("tr[data-source=scratch] >> text=Delete…")
            page.click("#confirm-delete")
            expect(page).to_have_url(f"{url}/sources")
            expect(page.locator("tr[data-source=scratch]")).to_have_count(0)

            # Webhooks posted over HTTP show in the live view within 2 s.
            page.goto(f"{url}/events?source=shop")
            expect(page.locator("#tail")).to_contain_text("No events yet.")
            for n in range(3):
                assert _post_webhook(url, "shop", {"order": n, "email": "ada@example.com"}) < 300
            expect(page.locator("tr.event")).to_have_count(3, timeout=LIVE_WITHIN_MS)

            page.locator("tr.event a").first.click()
            expect(page.locator("#event-type")).to_have_text("order.paid")
            expect(page.locator("#payload")).to_contain_text('"order": 2')

            # Refused while disabled, replayed from the refusals page once enabled again.
            page.goto(f"{url}/sources")
            page.click("tr[data-source=shop] >> text=Disable")
            expect(page.locator("tr[data-source=shop]")).to_contain_text("disabled")
            assert _post_webhook(url, "shop", {"order": 99}) == 403
            page.click("tr[data-source=shop] >> text=Enable")
            expect(page.locator("tr[data-source=shop]")).to_contain_text("enabled")
            page.goto(f"{url}/refusals")
            page.locator("tr.refusal a").first.click()
            page.click("#replay")
            expect(page.locator("#replay-answer")).to_be_visible()
            expect(page.locator("#replayed")).not_to_contain_text("not yet")
            page.goto(f"{url}/events?source=shop")
            expect(page.locator("tr.event")).to_have_count(4, timeout=LIVE_WITHIN_MS)

            # The overview draws the last hour per minute and redraws its live part by itself.
            page.goto(f"{url}/")
            points = page.locator("#per-minute circle.point")
            expect(points).to_have_count(60)
            drawn = sum(int(points.nth(i).get_attribute("data-value") or 0) for i in range(60))
            with server.client() as http:
                assert drawn == len(
                    http.get("/api/events", params={"limit": 1000}).json()["events"]
                )
            accepted = int(page.locator("#accepted").text_content() or "0")
            assert _post_webhook(url, "shop", {"order": 100}) < 300
            expect(page.locator("#accepted")).to_have_text(
                str(accepted + 1), timeout=OVERVIEW_REFRESH_MS
            )
            expect(page.locator("#batch")).not_to_have_text("0.0")

            # A change without the CSRF token is refused, and changes nothing.
            refused = context.request.post(f"{url}/sources", form={"name": "Forged"})
            assert refused.status == 403
            assert "CSRF" in refused.json()["error"]
            forged = context.request.post(
                f"{url}/sources/shop/disable", form={"csrf": "not-the-token"}
            )
            assert forged.status == 403
            page.goto(f"{url}/sources")
            expect(page.locator("tr[data-source=shop]")).to_contain_text("enabled")
            assert "Forged" not in page.content()

            # The API docs render from local files.
            page.goto(f"{url}/docs")
            expect(page.locator(".swagger-ui .info")).to_be_visible()

            page.goto(f"{url}/")
            page.click("#signout")
            expect(page).to_have_url(f"{url}/signin")
            with server.client() as http:
                event_path = "/events/" + http.get("/api/events").json()["events"][0]["id"]
            for path in ("/", "/sources", "/events", "/events/tail", event_path, "/refusals"):
                page.goto(f"{url}{path}")
                expect(page).to_have_url(f"{url}/signin")
            after = context.request.post(f"{url}/sources", form={"name": "Late"}, max_redirects=0)
            assert after.status == 303
            assert after.headers["location"] == "/signin"
            context.close()
        finally:
            browser.close()

    assert console_errors == []
    assert outside == []


def _post_typed(url: str, event_type: str, source_id: str, body: dict[str, object]) -> None:
    answer = httpx.post(f"{url}/collect/{event_type}/{source_id}", json=body, timeout=10)
    assert answer.status_code < 300, answer.text


def test_profiles_rules_and_insights_in_a_real_browser(server: LiveServer) -> None:
    url = server.url
    console_errors: list[str] = []
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context()
            context.on(
                "request",
                lambda r: None if r.url.startswith(f"{url}/") else outside.append(r.url),
            )
            page = context.new_page()
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            _sign_in(page, url)
            _create_source(page, url, "crm")

            # Rules edited on the source page are refused with the API's own message.
            bad_rules = '[{"path": "email", "kind": "E-MAIL!"}]'
            with server.client() as http:
                api = http.patch(
                    "/api/sources/crm", json={"identification": orjson.loads(bad_rules)}
                )
            assert api.status_code == 422
            page.click("tr[data-source=crm] a.source-link")
            page.fill("textarea[name=identification]", bad_rules)
            page.click("#save-rules")
            expect(page.locator("#form-error")).to_have_text(api.json()["error"])
            with server.client() as http:
                assert http.get("/api/sources/crm").json()["identification"] == []
            page.fill(
                "textarea[name=identification]",
                '[{"path": "email", "kind": "email", "create_profile": true}]',
            )
            page.fill("textarea[name=traits]", '{"plan": "plan"}')
            page.click("#save-rules")
            expect(page.locator("#saved")).to_be_visible()

            # Signing: refused with the API's message, then two secrets while rotating.
            page.goto(f"{url}/sources/crm")
            page.select_option("#signature-form select[name=preset]", "hmac")
            page.fill("#signature-form textarea[name=secrets]", "old-secret-0123456789")
            page.click("#save-signature")
            expect(page.locator("#form-error")).to_contain_text(
                "the hmac preset needs the header that carries the signature"
            )
            page.select_option("#signature-form select[name=preset]", "hmac")
            page.fill(
                "#signature-form textarea[name=secrets]",
                "old-secret-0123456789\nnew-secret-9876543210",
            )
            page.fill("#signature-form input[name=header]", "X-Crm-Signature")
            page.click("#save-signature")
            expect(page.locator("#saved")).to_be_visible()
            expect(page.locator("#signing-now")).to_contain_text("2 secrets")
            expect(page.locator("#signing-now")).to_contain_text("...3210")
            assert "new-secret-9876543210" not in page.content()
            assert _post_webhook(url, "crm", {"unsigned": True}) == 401
            page.click("#remove-signature")
            expect(page.locator("#signing-now")).to_contain_text("not signed")
            page.fill("#rate-form input[name=per_second]", "-1")
            page.click("#save-rate")
            expect(page.locator("#form-error")).to_contain_text("body.rate_limit.per_second")
            page.fill("#rate-form input[name=per_second]", "50")
            page.fill("#rate-form input[name=burst]", "100")
            page.click("#save-rate")
            expect(page.locator("#rate-now")).to_contain_text("50.0 requests a second, burst 100")
            with server.client() as http:
                assert http.get("/api/sources/crm").json()["rate_limit"]["burst"] == 100

            # An event with that email makes a profile, with the event on its timeline.
            _post_typed(url, "order.paid", "crm", {"email": "Ada@Example.com", "plan": "pro"})
            page.goto(f"{url}/profiles")
            page.fill("input[name=identifier]", "email:nobody")
            page.click("#find-profile")
            expect(page.locator("#form-error")).to_contain_text("does not identify anyone")
            page.fill("input[name=identifier]", "email:ADA@example.com")
            page.click("#find-profile")
            page.locator("tr.profile a").click()
            expect(page.locator("#identifiers")).to_contain_text("email:ada@example.com")
            expect(page.locator("#identifiers")).to_contain_text("crm: email")
            expect(page.locator("#traits")).to_contain_text('"pro"')
            expect(page.locator("tr.timeline-event")).to_have_count(1)
            expect(page.locator("tr.timeline-event")).to_contain_text("order.paid")
            profile_id = page.locator("#profile-id").text_content()

            # Erasing needs the CSRF token and a confirmation.
            forged = context.request.post(f"{url}/profiles/{profile_id}/erase", form={})
            assert forged.status == 403
            page.click("#erase-link")
            page.click("#confirm-erase")
            expect(page.locator("#erased")).to_contain_text("1 event(s) removed")
            page.goto(f"{url}/profiles?identifier=email:ada@example.com")
            expect(page.locator("tr.profile")).to_have_count(0)

            # Insights: 3 paid orders and 2 refunds, counted and summed by type.
            for total in (10, 20, 30):
                _post_typed(url, "order.paid", "crm", {"total": total})
            for total in (5, 7):
                _post_typed(url, "refund", "crm", {"total": total})
            # The live view filters on a property path, in the API's syntax.
            page.goto(f"{url}/events?source=crm")
            page.fill("input[name=property]", "properties.total=20")
            page.click("#filter")
            expect(page.locator("tr.event")).to_have_count(1, timeout=LIVE_WITHIN_MS)
            page.fill("input[name=property]", "total=20")
            page.click("#filter")
            expect(page.locator("#filter-error")).to_contain_text("expected properties.")
            page.goto(f"{url}/insights")
            page.select_option("select[name=metric]", "sum")
            page.fill("input[name=of]", "properties.total")
            page.locator("select[name=by]").first.select_option("type")
            page.fill("input[name=source_id]", "crm")
            page.select_option("select[name=range]", "1h")
            page.click("#run-insight")
            expect(page.locator("#chart rect")).to_have_count(2)
            rows = page.locator("tr.insight-row")
            expect(rows).to_have_count(2)
            expect(rows.nth(0)).to_contain_text("order.paid")
            expect(rows.nth(0).locator("td.value")).to_have_text("60")
            expect(rows.nth(1).locator("td.value")).to_have_text("12")
            assert "metric=sum" in page.url
            assert "by=type" in page.url

            # The address is the query: opened again, it draws the same; by hour it draws points.
            shared = page.url
            page.goto(f"{url}/insights")
            page.goto(shared)
            expect(page.locator("tr.insight-row td.count")).to_have_text(
                ["3", "2"]
            )  # the erased one is gone
            page.goto(f"{url}/insights?metric=count&by=hour&by=type&source_id=crm&range=all")
            points = page.locator("#chart circle.point")
            expect(page.locator("#chart g.series")).to_have_count(2)
            expect(points).to_have_count(page.locator("tr.insight-row").count())
            page.goto(f"{url}/insights?metric=p50&by=type&range=1h")
            expect(page.locator("#form-error")).to_contain_text("metric")
            context.close()
        finally:
            browser.close()

    assert console_errors == []
    assert outside == []
