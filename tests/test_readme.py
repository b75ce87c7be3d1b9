"""The README's walk-through works as written, against a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import start_server

pytestmark = pytest.mark.e2e  # every test here starts a real server process

README = Path(__file__).resolve().parents[1] / "README.md"


def walkthrough_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Five-minute walk-through", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def test_readme_walkthrough_works_as_written(tmp_path: Path) -> None:
    # No token in the environment: serve must create one in the data folder and print it.
    server = start_server(tmp_path / "data", tmp_path / "server.log", EVENTSTITCH_API_TOKEN="")
    try:
        token = (tmp_path / "data" / "api-token").read_text().strip()
        assert token in (tmp_path / "server.log").read_text()
        environ = {**os.environ, "EVENTSTITCH_DATA_DIR": str(tmp_path / "data")}
        environ.pop("EVENTSTITCH_API_TOKEN", None)
        outputs = []
        for block in walkthrough_blocks():
            script = block.replace("http://127.0.0.1:8686", server.url).replace(
                ".venv/bin/eventstitch", f"{sys.executable} -m eventstitch"
            )
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", "export TOKEN=$(cat data/api-token)\n" + script],
                cwd=tmp_path,
                env=environ,
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, (block, result.stderr.decode())
            outputs.append(result.stdout.decode())
        everything = "\n".join(outputs)
        with server.client() as http:
            http.headers["Authorization"] = f"Bearer {token}"
            events = http.get("/api/events", params={"source_id": "shop-hooks"}).json()["events"]
            system = http.get("/api/events", params={"source_id": "system"}).json()["events"]
            source = http.get("/api/sources/shop-hooks").json()
    finally:
        server.stop()

    assert sorted(e["type"] for e in events) == ["page-view", "ping", "signup"]
    assert '"profile_less":true' in everything
    assert "source 'no-such-source' not found" in everything
    assert "malformed JSON at line 1" in everything
    assert source["enabled"] is False  # the last step disables it
    # Eventstitch records its own happenings as events of the system source.
    assert {"source-created", "source-disabled"} <= {e["type"] for e in system}
    # curl prints answers back to back, without newlines: decode the first counts answer.
    start = everything.index('{"by":["type"]')
    counts, _ = json.JSONDecoder().raw_decode(everything[start:])
    by_type = {row["type"]: row["count"] for row in counts["rows"]}
    assert {t: by_type[t] for t in ("page-view", "signup", "ping")} == {
        "page-view": 1,
        "signup": 1,
        "ping": 1,
    }
