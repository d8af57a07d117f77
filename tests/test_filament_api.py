"""``/api/spools`` over HTTP against the real service watching ``bambupi sim``: anyone reads the list; only the
owner adds, edits, deletes and moves spools, with the same session, CSRF token and same-origin rule as every other
change; a wrong body is a 400 naming the field (bad JSON too), a huge one a 413, an unknown spool a 404; a refused
request changes nothing and the service keeps answering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support import CSRF, logged_in_box, wait_for

TAGGED = 2  # the simulated P1S's AMS holds two Bambu spools with RFID tags


async def listed(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/api/spools")
    assert r.status_code == 200, r.text
    spools: list[dict[str, Any]] = r.json()["spools"]
    return spools


async def rfid_spools_appear(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    async def tagged() -> bool:
        return len([s for s in await listed(client) if s["rfid"]]) >= TAGGED

    await wait_for(tagged, what="the AMS's tagged spools in /api/spools")
    return await listed(client)


async def test_anyone_reads_the_spools_and_only_the_owner_changes_them(tmp_path: Path) -> None:
    async with logged_in_box(tmp_path) as (box, owner, csrf):
        before = await rfid_spools_appear(owner)
        tagged = next(s for s in before if s["rfid"])
        assert tagged["location"]["kind"] == "ams" and tagged["brand"] == "Bambu Lab"
        async with httpx.AsyncClient(base_url=box.base, timeout=60) as anyone:
            r = await anyone.get("/api/spools")
            assert r.status_code == 200 and r.json()["low_g"] == 100 and r.json()["spools"] == before
            assert (await anyone.get("/filament")).status_code == 200
            new = {"material": "PETG", "colour": "#00ff00", "brand": "Generic", "net_g": 1000, "remaining_g": 640}
            spool = f"/api/spools/{tagged['id']}"
            for method, path, body in (
                ("POST", "/api/spools", new), ("PATCH", spool, {"remaining_g": 1}), ("DELETE", spool, None),
                ("POST", f"{spool}/assign", {"location": "shelf"}),
            ):
                r = await anyone.request(method, path, json=body, headers={CSRF: csrf})  # a token, no session
                assert r.status_code == 401, (method, path, r.text)
                r = await owner.request(method, path, json=body)  # the session, no token
                assert r.status_code == 403 and CSRF in r.json()["error"], (method, path, r.text)
                r = await owner.request(method, path, json=body, headers={CSRF: csrf, "Origin": "http://evil.example"})
                assert r.status_code == 403 and "cross-site" in r.json()["error"], (method, path, r.text)
            assert await listed(owner) == before  # nothing refused was done

            r = await owner.post("/api/spools", json=new, headers={CSRF: csrf, "Origin": box.base})
            assert r.status_code == 201, r.text
            added = r.json()
            assert {k: added[k] for k in new} == {**new, "colour": "#00FF00"}
            assert added["location"] == {"kind": "shelf"} and added["rfid"] is None and added["low"] is False
            mine = f"/api/spools/{added['id']}"
            r = await owner.patch(mine, json={"remaining_g": 42.5, "brand": "Other"}, headers={CSRF: csrf})
            assert r.status_code == 200 and (r.json()["remaining_g"], r.json()["low"]) == (42.5, True), r.text
            r = await owner.post(f"{mine}/assign", json={"location": "external", "printer": "garage"},
                                 headers={CSRF: csrf})  # fmt: skip
            assert r.status_code == 200 and r.json()["location"]["kind"] == "external", r.text
            assert [s for s in (await anyone.get("/api/spools")).json()["spools"] if s["id"] == added["id"]] \
                == [r.json()]  # anyone sees the owner's change
            r = await owner.delete(mine, headers={CSRF: csrf})
            assert (r.status_code, r.json()) == (200, {"deleted": added["id"]})
            assert await listed(owner) == before


async def a_tagged_spool(owner: httpx.AsyncClient) -> str:
    tagged = next(s for s in await rfid_spools_appear(owner) if s["rfid"])
    return f"/api/spools/{tagged['id']}"


BAD: list[tuple[str, str, Any, str]] = [
    # (method, which path, body, the field the error must name first)
    ("POST", "list", {}, "material"),
    ("POST", "list", {"material": "   "}, "material"),
    ("POST", "list", {"material": "P" * 33}, "material"),
    ("POST", "list", {"material": "PLA\x07"}, "material"),
    ("POST", "list", {"material": "PLA", "colour": "red"}, "colour"),
    ("POST", "list", {"material": "PLA", "brand": 7}, "brand"),
    ("POST", "list", {"material": "PLA", "net_g": -1}, "net_g"),
    ("POST", "list", {"material": "PLA", "remaining_g": 1e9}, "remaining_g"),
    ("POST", "list", {"material": "PLA", "remaining_g": True}, "remaining_g"),
    ("POST", "list", {"material": "PLA", "remaining_g": "12"}, "remaining_g"),
    ("PATCH", "spool", {"rfid": "forged"}, "rfid"),
    ("PATCH", "spool", {"location": "shelf"}, "location"),
    ("PATCH", "spool", {"remaining_g": -0.5}, "remaining_g"),
    ("PATCH", "spool", {"material": ""}, "material"),
    ("POST", "assign", {}, "location"),
    ("POST", "assign", {"location": "moon"}, "location"),
    ("POST", "assign", {"location": "ams", "printer": "attic", "ams": 0, "tray": 0}, "printer"),
    ("POST", "assign", {"location": "ams", "printer": "garage", "ams": 0, "tray": 16}, "tray"),
    ("POST", "assign", {"location": "ams", "printer": "garage", "ams": "0", "tray": 1}, "ams"),
    ("POST", "assign", {"location": "external", "printer": "garage", "holder": 3}, "holder"),
    ("POST", "list", "not json {", "body"),
    ("POST", "list", ["material", "PLA"], "body"),
    ("PATCH", "spool", "", "body"),
    ("POST", "assign", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "body"),
]


async def test_a_wrong_body_is_a_400_naming_the_field_and_changes_nothing(tmp_path: Path) -> None:
    async with logged_in_box(tmp_path) as (_, owner, csrf):
        spool = await a_tagged_spool(owner)
        paths = {"list": "/api/spools", "spool": spool, "assign": f"{spool}/assign"}
        before = await listed(owner)
        for method, which, body, field in BAD:
            content = body.encode() if isinstance(body, str) else httpx.Request("X", "/", json=body).content
            r = await owner.request(method, paths[which], content=content,
                                    headers={CSRF: csrf, "Content-Type": "application/json"})  # fmt: skip
            assert r.status_code == 400, (method, which, body, r.text)
            assert r.json()["error"].startswith(f"{field}:"), (method, which, body, r.json())
        assert await listed(owner) == before


async def test_an_unknown_spool_is_a_404_and_a_huge_body_a_413(tmp_path: Path) -> None:
    async with logged_in_box(tmp_path) as (_, owner, csrf):
        before = await rfid_spools_appear(owner)
        for method, path, body in (
            ("PATCH", "/api/spools/9999", {"remaining_g": 5}), ("DELETE", "/api/spools/9999", None),
            ("POST", "/api/spools/9999/assign", {"location": "shelf"}),
        ):
            r = await owner.request(method, path, json=body, headers={CSRF: csrf})
            assert r.status_code == 404 and "no spool 9999" in r.json()["error"], (method, r.text)
        assert (await owner.patch("/api/spools/abc", json={}, headers={CSRF: csrf})).status_code == 404
        huge = b'{"material": "PLA", "brand": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        r = await owner.post("/api/spools", content=huge, headers={CSRF: csrf, "Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert await listed(owner) == before  # and the service still answers
