"""A refusal never echoes a long id whole: each 404 repeats at most 200 characters of it (a
source id, 64 characters at most when valid, is cut at 80)."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from tests.conftest import assert_error_shape, create_source

LONG_ID = "x" * 1000 + "-end"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/sources/{id}"),
        ("PATCH", "/api/sources/{id}"),
        ("DELETE", "/api/sources/{id}"),
        ("GET", "/api/events/{id}"),
        ("GET", "/api/profiles/{id}"),
        ("DELETE", "/api/profiles/{id}"),
        ("GET", "/api/rejections/{id}"),
        ("POST", "/collect/order/{id}"),
    ],
)
def test_a_404_for_a_long_id_repeats_only_its_start(
    client: TestClient, method: str, path: str
) -> None:
    answer = client.request(
        method, path.format(id=LONG_ID), json={"name": "n"} if method != "GET" else None
    )
    error = assert_error_shape(answer, 404)
    assert LONG_ID not in answer.text
    assert "-end" not in answer.text
    assert len(answer.content) < 600, answer.text
    assert re.search(r"x{60,197}\.\.\.", error["error"]), error["error"]


def test_a_short_id_is_repeated_whole(client: TestClient) -> None:
    create_source(client, id="shop")
    error = assert_error_shape(client.get("/api/sources/shoq"), 404)
    assert error["error"] == "source 'shoq' not found"
