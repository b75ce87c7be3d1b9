"""The real Node SDKs (@segment/analytics-node, posthog-node), unchanged, driven by a small
script each (tests/sdk/node/) against a real server on a loopback port, on both backends.
`make test` installs them (`npm ci` in tests/sdk/node); without node or the install the tests
skip, except under CI=true, where that is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from tests.sdk.test_python_sdks import check_story, server, tracker

__all__ = ["server"]  # the module-scoped server per backend, shared with the Python SDK tests

NODE_DIR = Path(__file__).parent / "node"


def node_or_skip() -> str:
    node = shutil.which("node")
    installed = (NODE_DIR / "node_modules" / "posthog-node").is_dir() and (
        NODE_DIR / "node_modules" / "@segment" / "analytics-node"
    ).is_dir()
    if node is None or not installed:
        problem = "node is missing" if node is None else "run `npm ci` in tests/sdk/node"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Node SDK tests cannot run: {problem}")
        pytest.skip(problem)
    return node


@pytest.mark.parametrize(
    ("script", "source_id"), [("segment.mjs", "segment-node"), ("posthog.mjs", "posthog-node")]
)
def test_node_sdk(server: LiveServer, script: str, source_id: str) -> None:
    node = node_or_skip()
    with server.client() as client:
        key = tracker(client, source_id)
        ran = subprocess.run(
            [node, script, server.url, key],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        # posthog-node gzips by default; analytics-node never does.
        check_story(client, source_id, track_type="signed-up", gzip=script == "posthog.mjs")
