"""The route contract (issue 16, item 4): every route of the real service declares who may call it, every owner
route refuses others with the same JSON from the one mapper, and errors are answered in one place."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bottle
import httpx
import pytest
import trio

from bambupi.state_hub import StateHub
from bambupi.web.api import make_app
from bambupi.web.auth import CSRF_HEADER
from bambupi.web.route_contract import Access, Conflict, access_of, expose
from tests.support import Box, setup_and_login, start_box

pytestmark = pytest.mark.timeout(120)

LOG_IN_FIRST = {"error": "log in first (POST /api/login)", "status": 401}
WRONG_CSRF = {"error": f"missing or wrong {CSRF_HEADER} header", "status": 403}
CROSS_SITE = {"error": "cross-site request refused", "status": 403}
# Values for the path wildcards of every route.
SAMPLE_ARGS = {"printer_id": "garage", "name": "x", "job_id": "1", "spool_id": "1", "invite_id": "x", "session_id": "x"}
NEEDS_LOGIN = (Access.OWNER, Access.OPERATOR, Access.SIGNED_IN)


def _path(rule: str) -> str:
    return re.sub(r"<(\w+)(?::[^>]*)?>", lambda m: SAMPLE_ARGS[m.group(1)], rule)


def _routes(box: Box) -> list[bottle.Route]:
    assert box.running.web_app is not None
    return list(box.running.web_app.routes)


async def test_every_route_declares_who_may_call_it(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path)
        routes = _routes(box)
        undeclared = [f"{r.method} {r.rule}" for r in routes if access_of(r) is None]
        assert undeclared == []
        def declared(access: Access) -> set[str]:
            return {f"{r.method} {r.rule}" for r in routes if access_of(r) is access}

        # What changes the box, its people or names what is on the LAN is the owner's (issue 16's list, issue 19).
        assert {
            "POST /api/printers/<printer_id>/trust", "GET /api/discovery", "GET /api/settings", "POST /api/settings",
            "GET /settings", "GET /api/notify", "POST /api/notify/<name>/test", "DELETE /api/jobs/<job_id:int>",
            "DELETE /api/spools/<spool_id:int>", "GET /api/users", "POST /api/users/invites", "PATCH /api/users/<name>",
            "DELETE /api/users/<name>", "DELETE /api/users/invites/<invite_id>", "GET /users",
        } <= declared(Access.OWNER)
        # The printer's controls and the plug: operators too (issue 19).
        assert {
            "POST /api/printers/<printer_id>/commands", "POST /api/printers/<printer_id>/plug",
            "POST /api/printers/<printer_id>/auto-off/cancel", "POST /api/panel/button",
        } <= declared(Access.OPERATOR)
        assert {"POST /api/logout", "GET /api/sessions", "POST /api/sessions/end-all"} <= declared(Access.SIGNED_IN)
        # Changing anything is never open to anyone, except the login itself, the first visit's password and
        # accepting an invitation (each checks its caller: rate limit, Origin).
        anyone_changes = {f"{r.method} {r.rule}" for r in routes if access_of(r) is Access.ANYONE and r.method != "GET"}
        assert anyone_changes == {"POST /api/login", "POST /api/setup", "POST /api/invites/peek",
                                  "POST /api/invites/accept"}
        nursery.cancel_scope.cancel()


async def test_each_owner_route_refuses_others_with_the_same_json(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path)
        owner_routes = [r for r in _routes(box) if access_of(r) in NEEDS_LOGIN]
        assert len(owner_routes) >= 20
        async with httpx.AsyncClient(base_url=box.base) as anon, httpx.AsyncClient(base_url=box.base) as owner:
            csrf = await setup_and_login(owner)
            for route in owner_routes:
                path = _path(route.rule)
                r = await anon.request(route.method, path, json={})
                assert (r.status_code, r.json()) == (401, LOG_IN_FIRST), f"{route.method} {path}"
                if route.method == "GET":
                    continue
                # A session is not enough for a change: its CSRF token, from the box's own page.
                r = await owner.request(route.method, path, json={})
                assert (r.status_code, r.json()) == (403, WRONG_CSRF), f"{route.method} {path}"
                r = await owner.request(
                    route.method, path, json={}, headers={CSRF_HEADER: csrf, "Origin": "http://attacker.example"}
                )
                assert (r.status_code, r.json()) == (403, CROSS_SITE), f"{route.method} {path}"
            # The owner passes the door (what follows is the route's own answer, not a refusal).
            r = await owner.get("/api/notify")
            assert r.status_code == 200 and "channels" in r.json()
        nursery.cancel_scope.cancel()


# --- the mapper, on a bare app (a WSGI call, no sockets) ------------------------------------------------------------


def _call(app: bottle.Bottle, method: str, path: str) -> tuple[int, dict[str, str], Any]:
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "box", "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": io.StringIO(), "wsgi.url_scheme": "http", "CONTENT_LENGTH": "0",
    }
    started: list[Any] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: started.append((status, headers))))
    status, headers = started[-1]
    return int(status[:3]), dict(headers), json.loads(body)


@pytest.fixture
def app() -> Iterator[bottle.Bottle]:
    app = make_app(StateHub(()))
    yield app
    app.close()


def test_a_typed_error_is_answered_with_its_status_fields_and_headers(app: bottle.Bottle) -> None:
    def busy() -> None:
        raise Conflict("the plug is being switched already", confirm="why", headers={"Retry-After": "3"})

    expose(app, "GET", "/busy", busy, Access.ANYONE)
    status, headers, body = _call(app, "GET", "/busy")
    assert status == 409 and headers["Retry-After"] == "3" and headers["Content-Type"] == "application/json"
    assert body == {"error": "the plug is being switched already", "status": 409, "confirm": "why"}


def test_an_unexpected_exception_is_a_generic_500_logged_once_with_its_traceback(
    app: bottle.Bottle, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("inside detail")

    expose(app, "GET", "/broken", broken, Access.ANYONE)
    with caplog.at_level(logging.DEBUG):
        status, _, body = _call(app, "GET", "/broken")
    assert status == 500 and body == {"error": "internal error", "status": 500}
    assert "inside detail" not in json.dumps(body)
    failures = [r for r in caplog.records if r.exc_info is not None]
    assert len(failures) == 1 and "GET /broken" in failures[0].getMessage()
    assert isinstance(failures[0].exc_info[1], RuntimeError)  # type: ignore[index]


def test_a_route_without_an_access_level_is_never_served(app: bottle.Bottle) -> None:
    app.route("/open", "GET", lambda: {"secret": "s3cr3t"})  # not through expose()
    status, _, body = _call(app, "GET", "/open")
    assert status == 500 and "s3cr3t" not in json.dumps(body)


def test_without_a_login_the_owners_routes_are_closed(app: bottle.Bottle) -> None:
    expose(app, "GET", "/mine", lambda: {"ok": True}, Access.OWNER)
    expose(app, "GET", "/watch", lambda: {"ok": True}, Access.VIEWER)
    assert _call(app, "GET", "/mine")[::2] == (401, LOG_IN_FIRST)
    assert _call(app, "GET", "/watch")[::2] == (401, LOG_IN_FIRST)


def test_bottles_own_answers_have_the_same_shape(app: bottle.Bottle) -> None:
    assert _call(app, "GET", "/nowhere")[::2] == (404, {"error": "no route /nowhere", "status": 404})
    assert _call(app, "DELETE", "/healthz")[::2] == (405, {"error": "method DELETE not allowed here", "status": 405})
