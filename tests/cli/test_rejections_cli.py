"""`eventstitch rejections`: the same listing, record and replay as `/api/rejections`."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.cli.conftest import fails, ok, ok_json


def test_rejections_list_show_and_replay_are_what_the_api_does(http: TestClient) -> None:
    http.post("/api/sources", json={"id": "shop", "name": "Shop", "enabled": False})
    assert http.post("/collect/order/shop", json={"n": 1}).status_code == 403
    assert http.post("/collect/order/nope", json={"n": 2}).status_code == 404
    api = http.get("/api/rejections").json()

    listed = ok_json("rejections", "list")
    assert listed == api
    assert [
        r["reason"]
        for r in ok_json("rejections", "list", "--reason", "unknown_source")["rejections"]
    ] == ["unknown_source"]
    assert ok_json("rejections", "list", "--source", "shop")["rejections"] == api["rejections"][1:]
    assert "0 not kept" in ok("rejections", "list")  # a table for people (folded to fit)

    disabled = api["rejections"][1]
    shown = ok_json("rejections", "show", disabled["id"])
    assert shown == http.get(f"/api/rejections/{disabled['id']}").json()
    assert shown["body"] == '{"n":1}'

    assert "disabled" in fails("rejections", "replay", disabled["id"])
    http.patch("/api/sources/shop", json={"enabled": True})
    answer = ok_json("rejections", "replay", disabled["id"])
    assert http.get(f"/api/events/{answer['id']}").json()["properties"] == {"n": 1}
    assert "already replayed" in fails("rejections", "replay", disabled["id"])
    assert "not found" in fails("rejections", "show", "nope")
    assert "since" in fails("rejections", "list", "--since", "soon", code=2)
