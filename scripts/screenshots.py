"""Write a PNG of each console page into docs/screens/, from a freshly seeded store: a server
on a loopback port and a temporary data directory, signed in with the system Chromium."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
OUT = Path(__file__).resolve().parent.parent / "docs" / "screens"
TOKEN = secrets.token_urlsafe(24)
START_WITHIN_S = 30
INSIGHT = "metric=sum&of=properties.total&by=type&source_id=shop&range=24h"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "EVENTSTITCH_DATA_DIR": str(data_dir),
        "EVENTSTITCH_API_TOKEN": TOKEN,
        "EVENTSTITCH_HOST": "127.0.0.1",
        "EVENTSTITCH_PORT": str(port),
        "EVENTSTITCH_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([sys.executable, "-m", "eventstitch", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_WITHIN_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("the server did not start")


def _seed(url: str) -> dict[str, str]:
    """A few sources, events of several types, a profile, a refusal. Returns ids to open."""
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    rule = [{"path": "email", "kind": "email", "create_profile": True}]
    api.post(
        "/api/sources",
        json={"id": "shop", "name": "Shop", "identification": rule, "traits": {"plan": "plan"}},
    ).raise_for_status()
    api.post("/api/sources", json={"id": "billing", "name": "Billing"}).raise_for_status()
    api.post("/api/sources", json={"id": "web", "name": "Website", "kind": "tracker"})
    sends = [
        ("order.paid", "shop", {"total": 40 + n * 7, "email": "ada@example.com"}) for n in range(6)
    ]
    sends += [
        ("signup", "shop", {"email": f"user{n}@example.com", "plan": "pro"}) for n in range(4)
    ]
    sends += [("invoice.created", "billing", {"amount": 120 + n}) for n in range(3)]
    sends += [("refund", "shop", {"total": 12})]
    for event_type, source, body in sends:
        httpx.post(f"{url}/collect/{event_type}/{source}", json=body, timeout=10).raise_for_status()
    api.patch("/api/sources/billing", json={"enabled": False}).raise_for_status()
    httpx.post(f"{url}/collect/invoice.paid/billing", json={"amount": 99}, timeout=10)
    api.patch("/api/sources/billing", json={"enabled": True}).raise_for_status()
    # Signed deliveries with two secrets (a rotation under way) and a rate limit, for the
    # source page; set after the unsigned sends above.
    signature = {"preset": "github", "secrets": ["old-secret-0123456789", "new-secret-98765"]}
    api.patch(
        "/api/sources/shop",
        json={"signature": signature, "rate_limit": {"per_second": 50, "burst": 100}},
    ).raise_for_status()
    event_id = api.get("/api/events", params={"type": "order.paid"}).json()["events"][0]["id"]
    [profile] = api.get("/api/profiles", params={"identifier": "email:ada@example.com"}).json()[
        "profiles"
    ]
    refusal = api.get("/api/rejections").json()["rejections"][0]["id"]
    return {"event": event_id, "profile": profile["id"], "refusal": refusal}


def _shoot(page: Page, url: str, path: str, name: str) -> None:
    page.goto(f"{url}{path}")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"docs/screens/{name}.png  {path}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        process, url = _start(Path(data_dir))
        try:
            ids = _seed(url)
            pages = {
                "overview": "/",
                "sources": "/sources",
                "source": "/sources/shop",
                "live-events": "/events?source=shop&property=properties.plan%3Dpro",
                "event": f"/events/{ids['event']}",
                "insights": f"/insights?{INSIGHT}",
                "profiles": "/profiles?identifier=email:ada@example.com",
                "profile": f"/profiles/{ids['profile']}",
                "refusals": "/refusals",
                "refusal": f"/refusals/{ids['refusal']}",
                "signin": "/signin",
            }
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport={"width": 1200, "height": 760})
                _shoot(page, url, "/signin", "signin")
                page.fill("input[name=token]", TOKEN)
                page.click("button[type=submit]")
                page.wait_for_url(f"{url}/")
                for name, path in pages.items():
                    if name != "signin":
                        _shoot(page, url, path, name)
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
