"""Users and roles (issue 19): invitations that work once, an operator who may pause but not change settings, a
viewer who may not pause, sessions listed and ended, a removed person signed out at once, who paused named in the
MQTT log and the job's timeline, and an old box's owner password kept. Over real HTTP against the real service and
the simulated printer over TLS; the users file is a real file (broken, unwritable) where it matters."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from bambupi.config import load_config
from bambupi.passwords import hash_password
from bambupi.service import Service
from bambupi.sim.plug import SimulatedPlug
from bambupi.sim.simulator import Simulator
from bambupi.web.auth import Sessions
from bambupi.web.users import OWNER_NAME, UsersError, UserStore, code_digest, normalise_code
from tests.support import (
    CODE,
    CSRF,
    PASSWORD,
    PLUGGED_PRINTER,
    SERIAL,
    Box,
    fill,
    online,
    setup_and_login,
    start_box,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)

ALICE_PASSWORD = "alice's own secret"
BOB_PASSWORD = "bob watches only"


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    async with trio.open_nursery() as nursery:
        yield await start_box(nursery, tmp_path)
        nursery.cancel_scope.cancel()


def client(box: Box) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=box.base, timeout=60)


async def invite(owner: httpx.AsyncClient, csrf: str, name: str, role: str) -> str:
    r = await owner.post("/api/users/invites", json={"name": name, "role": role}, headers={CSRF: csrf})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["path"] == f"/invite#code={body['code']}"
    return str(body["code"])


async def accept(person: httpx.AsyncClient, code: str, password: str) -> str:
    r = await person.post("/api/invites/accept", json={"code": code, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf"])


async def running(person: httpx.AsyncClient, box: Box) -> None:
    box.sim.printer.start_print("bracket", layers=50, minutes=120)

    async def printing() -> bool:
        return (await person.get("/api/printers/garage")).json()["state"]["gcode_state"] == "RUNNING"

    await wait_for(printing, what="the print running")


async def test_an_operator_pauses_a_viewer_cannot_and_the_log_and_timeline_name_who(
    box: Box, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with client(box) as owner, client(box) as alice, client(box) as bob:
        csrf = await setup_and_login(owner)
        await online(owner)
        alice_code = await invite(owner, csrf, "alice", "operator")
        bob_code = await invite(owner, csrf, "bob", "viewer")
        assert (await alice.post("/api/invites/peek", json={"code": alice_code})).json()["role"] == "operator"
        alice_csrf = await accept(alice, alice_code, ALICE_PASSWORD)
        bob_csrf = await accept(bob, bob_code, BOB_PASSWORD)
        info = (await alice.get("/api/session")).json()
        assert (info["user"], info["role"], info["logged_in"]) == ("alice", "operator", True)

        await running(alice, box)
        # The viewer may watch but not pause: refused with who may, and the printer goes on.
        r = await bob.post("/api/printers/garage/commands", json={"command": "pause"}, headers={CSRF: bob_csrf})
        assert r.status_code == 403
        assert r.json()["error"] == "this needs an operator's or the owner's login: bob is a viewer"
        assert box.sim.printer.gcode_state == "RUNNING"
        assert (await bob.get("/api/printers/garage")).status_code == 200
        # The operator pauses; settings, people and deleting history stay the owner's.
        r = await alice.post("/api/printers/garage/commands", json={"command": "pause"}, headers={CSRF: alice_csrf})
        assert r.status_code == 200 and r.json()["result"] == "success", r.text
        assert box.sim.printer.gcode_state == "PAUSE"
        for method, path in [("GET", "/api/settings"), ("POST", "/api/settings"), ("GET", "/api/users"),
                             ("POST", "/api/users/invites"), ("DELETE", "/api/jobs/1")]:
            r = await alice.request(method, path, json={}, headers={CSRF: alice_csrf})
            assert r.status_code == 403, (method, path)
            assert r.json()["error"] == "this needs the owner's login: alice is an operator", (method, path)
        # A browser opening the settings page reads why instead of JSON.
        r = await alice.get("/settings", headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
        assert "This needs the owner&#039;s login: alice is an operator" in r.text

        # Who paused: in the MQTT log's outgoing entry and on the job's timeline.
        log = (await owner.get("/api/printers/garage/mqtt-log")).json()["messages"]
        pauses = [m for m in log if m["direction"] == "out" and '"pause"' in m["payload"]]
        assert [m["origin"] for m in pauses] == ["alice (the page)"]
        pushall = [m for m in log if m["direction"] == "out" and "pushall" in m["payload"]]
        assert pushall and all(m["origin"] is None for m in pushall)  # the box's own requests name no one

        async def timeline() -> list[dict[str, object]]:
            jobs = (await owner.get("/api/jobs")).json()["jobs"]
            if not jobs:
                return []
            events: list[dict[str, object]] = (await owner.get(f"/api/jobs/{jobs[0]['id']}")).json()["events"]
            return events

        async def paused_entry() -> bool:
            return any(e["kind"] == "job_paused" for e in await timeline())

        await wait_for(paused_entry, what="the paused entry on the job's timeline")
        paused = [e for e in await timeline() if e["kind"] == "job_paused"]
        assert [e["text"] for e in paused] == ["by alice (the page)"]
        # The owner's resume names the owner.
        r = await owner.post("/api/printers/garage/commands", json={"command": "resume"}, headers={CSRF: csrf})
        assert r.status_code == 200

        async def resumed_entry() -> bool:
            return any(e["kind"] == "job_resumed" for e in await timeline())

        await wait_for(resumed_entry, what="the resumed entry")
        assert [e["text"] for e in await timeline() if e["kind"] == "job_resumed"] == ["by owner (the page)"]

    # No code and no password in any log line.
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (alice_code, bob_code, ALICE_PASSWORD, BOB_PASSWORD, PASSWORD):
        assert secret not in text


async def test_an_invitation_works_once_and_its_code_is_kept_only_hashed(box: Box) -> None:
    async with client(box) as owner, client(box) as alice, client(box) as mallory:
        csrf = await setup_and_login(owner)
        code = await invite(owner, csrf, "alice", "operator")
        stored = (box.config_path.parent / "users.json").read_text()
        assert code not in stored and code_digest(code) in stored
        # Typed by hand: lower case, without dashes, O for 0.
        typed = code.lower().replace("-", "").replace("0", "o")
        await accept(alice, typed, ALICE_PASSWORD)
        r = await mallory.post("/api/invites/accept", json={"code": code, "password": "mallory's password"})
        assert r.status_code == 404 and "used, withdrawn or has expired" in r.json()["error"]
        assert (await mallory.post("/api/invites/peek", json={"code": code})).status_code == 404
        # Alice's password is hers: the login with it works, as alice.
        async with client(box) as again:
            r = await again.post("/api/login", json={"name": "alice", "password": ALICE_PASSWORD})
            assert r.status_code == 200 and r.json()["role"] == "operator"
            r = await again.post("/api/login", json={"name": "alice", "password": PASSWORD})
            assert r.status_code == 401 and r.json()["error"] == "wrong name or password"
        users = (await owner.get("/api/users")).json()
        assert [(u["name"], u["role"]) for u in users["users"]] == [("owner", "owner"), ("alice", "operator")]
        assert users["invites"] == []
        # A withdrawn invitation no longer works; guessing codes is rate-limited like passwords.
        code = await invite(owner, csrf, "carol", "viewer")
        invite_id = (await owner.get("/api/users")).json()["invites"][0]["id"]
        assert (await owner.delete(f"/api/users/invites/{invite_id}", headers={CSRF: csrf})).status_code == 200
        statuses = [
            (await mallory.post("/api/invites/accept", json={"code": code, "password": "12345678"})).status_code
            for _ in range(6)
        ]
        # The address's failed logins and codes count together (5 a minute, as the login's).
        assert 429 in statuses and set(statuses[: statuses.index(429)]) == {404}
        # Another site's page cannot accept one with a visitor's browser.
        r = await owner.post("/api/invites/accept", json={"code": code, "password": "12345678"},
                             headers={"Origin": "http://evil.example"})
        assert r.status_code == 403


async def test_removing_someone_signs_them_out_at_once_and_roles_change_live(box: Box) -> None:
    async with client(box) as owner, client(box) as alice:
        csrf = await setup_and_login(owner)
        alice_csrf = await accept(alice, await invite(owner, csrf, "alice", "operator"), ALICE_PASSWORD)
        await online(owner)
        r = await owner.patch("/api/users/alice", json={"role": "viewer"}, headers={CSRF: csrf})
        assert r.status_code == 200
        # The next request already has the new role (no new login needed).
        r = await alice.post("/api/printers/garage/commands", json={"command": "light_on"},
                             headers={CSRF: alice_csrf})
        assert r.status_code == 403 and "alice is a viewer" in r.json()["error"]
        r = await owner.delete("/api/users/alice", headers={CSRF: csrf})
        assert r.status_code == 200 and r.json()["sessions_ended"] == 1
        assert (await alice.get("/api/sessions")).status_code == 401
        assert (await alice.get("/api/session")).json()["logged_in"] is False
        r = await alice.post("/api/login", json={"name": "alice", "password": ALICE_PASSWORD})
        assert r.status_code == 401
        # The first owner stays.
        assert (await owner.delete("/api/users/owner", headers={CSRF: csrf})).status_code == 400
        assert (await owner.patch("/api/users/owner", json={"role": "viewer"}, headers={CSRF: csrf})).status_code == 400


async def test_my_sessions_are_listed_and_signing_out_everywhere_ends_them_all(box: Box) -> None:
    async with client(box) as owner, client(box) as phone, client(box) as laptop:
        csrf = await setup_and_login(owner)
        code = await invite(owner, csrf, "alice", "operator")
        phone_csrf = await accept(phone, code, ALICE_PASSWORD)
        r = await laptop.post("/api/login", json={"name": "Alice", "password": ALICE_PASSWORD},
                              headers={"User-Agent": "laptop browser"})
        assert r.status_code == 200 and r.json()["user"] == "alice"
        sessions = (await phone.get("/api/sessions")).json()["sessions"]
        assert len(sessions) == 2 and [s["current"] for s in sessions] == [True, False]
        assert sessions[1]["agent"] == "laptop browser" and sessions[1]["client"] == "127.0.0.1"
        assert all("token" not in s and "csrf" not in s for s in sessions)
        # One session cannot end another person's.
        owner_session = (await owner.get("/api/sessions")).json()["sessions"][0]["id"]
        r = await phone.post(f"/api/sessions/{owner_session}/end", headers={CSRF: phone_csrf})
        assert r.status_code == 404
        r = await phone.post("/api/sessions/end-all", headers={CSRF: phone_csrf})
        assert r.status_code == 200 and r.json()["sessions_ended"] == 2
        assert (await laptop.get("/api/sessions")).status_code == 401
        assert (await phone.get("/api/sessions")).status_code == 401
        assert (await owner.get("/api/sessions")).status_code == 200  # the owner's own stay


async def test_the_owner_logs_in_when_the_users_file_is_broken_and_it_is_not_overwritten(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text('{"version": 1, "users": [{"name": "alice", "ro')  # cut off by a power loss mid-edit
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path)
        async with client(box) as owner:
            csrf = await setup_and_login(owner)
            data = (await owner.get("/api/users")).json()
            assert "cannot be read" in data["problem"] and "only the owner can log in" in data["problem"]
            r = await owner.post("/api/users/invites", json={"name": "bob", "role": "viewer"}, headers={CSRF: csrf})
            assert r.status_code == 500 and "cannot be read" in r.json()["error"]
            assert users.read_text() == '{"version": 1, "users": [{"name": "alice", "ro'
            health = (await owner.get("/healthz")).json()
            assert health["status"] == "degraded" and health["components"]["users"]["ok"] is False
            assert "cannot be read" in health["components"]["users"]["error"]
        async with client(box) as again:
            r = await again.post("/api/login", json={"password": PASSWORD})
            assert r.status_code == 200 and r.json()["role"] == "owner"
            r = await again.post("/api/login", json={"name": "alice", "password": PASSWORD})
            assert r.status_code == 401
        # The owner fixes it over SSH (here: writes what it held): read at the next request, no restart.
        users.write_text(json.dumps({"version": 1, "invites": [], "users": [
            {"name": "alice", "role": "operator", "password_hash": hash_password(ALICE_PASSWORD), "created_at": 1.0},
        ]}))
        async with client(box) as alice:
            r = await alice.post("/api/login", json={"name": "alice", "password": ALICE_PASSWORD})
            assert r.status_code == 200 and r.json()["role"] == "operator"
            assert (await alice.get("/healthz")).json()["components"]["users"] == {"ok": True, "error": None}
            # Removed by hand: alice's account is gone with it, her session too.
            users.unlink()
            assert (await alice.get("/api/sessions")).status_code == 401
        nursery.cancel_scope.cancel()


async def test_an_old_boxs_owner_password_becomes_the_owner_and_camera_login_stays(tmp_path: Path) -> None:
    """A config file from before users existed: admin_password_hash and camera_requires_login = true."""
    sim = Simulator("P1S", SERIAL, CODE, scenario="idle", time_scale=100)
    old = tmp_path / "bambupi.toml"
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        old.write_text(
            "[web]\nlisten = \"127.0.0.1:0\"\n"
            f"admin_password_hash = \"{hash_password('the old password')}\"\ncamera_requires_login = true\n\n"
            "[[printer]]\nid = \"garage\"\nmodel = \"P1S\"\nhost = \"127.0.0.1\"\n"
            f"serial = \"{SERIAL}\"\naccess_code = \"{CODE}\"\nmqtt_port = {sim.mqtt_port}\n\n"
            f"[storage]\npath = \"{tmp_path}/bambupi.sqlite3\"\n"
        )
        config, problems = load_config(old)
        assert [p for p in problems if p.level == "error"] == []
        assert config.web.camera_role == "viewer"
        service_running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        box = Box(sim, service_running, f"http://127.0.0.1:{service_running.port}", old)
        async with client(box) as owner, client(box) as anon, client(box) as bob:
            assert (await anon.get("/api/printers/garage/snapshots")).status_code == 401
            r = await owner.post("/api/login", json={"password": "the old password"})
            assert r.status_code == 200 and (r.json()["user"], r.json()["role"]) == (OWNER_NAME, "owner")
            csrf = r.json()["csrf"]
            assert (await owner.get("/api/users")).status_code == 200
            # A viewer sees the camera (camera_requires_login = true is "any login").
            await accept(bob, await invite(owner, csrf, "bob", "viewer"), BOB_PASSWORD)
            assert (await bob.get("/api/printers/garage/snapshots")).status_code == 200
            assert not (tmp_path / "users.json.bak").exists()
            assert "admin_password_hash" in old.read_text()  # the owner's password stays where it was
        nursery.cancel_scope.cancel()


async def test_camera_access_by_role(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path)
        box.config_path.write_text(box.config_path.read_text().replace(
            "camera_requires_login = false", 'camera_access = "operator"'
        ))
        config, problems = load_config(box.config_path)
        assert not [p for p in problems if p.level == "error"] and config.web.camera_role == "operator"
        service = Service(config, storage_folder=tmp_path / "second")
        service_running = await nursery.start(service.run)
        second = Box(box.sim, service_running, f"http://127.0.0.1:{service_running.port}", box.config_path)
        paths = ("/api/printers/garage/snapshots", "/api/printers/garage/snapshot.jpg")
        async with client(second) as owner, client(second) as alice, client(second) as bob, client(second) as anon:
            csrf = await setup_and_login(owner)
            await accept(alice, await invite(owner, csrf, "alice", "operator"), ALICE_PASSWORD)
            await accept(bob, await invite(owner, csrf, "bob", "viewer"), BOB_PASSWORD)
            for path in paths:
                assert (await anon.get(path)).status_code == 401, path
                r = await bob.get(path)
                assert r.status_code == 403 and "bob is a viewer" in r.json()["error"], path
                assert (await alice.get(path)).status_code not in (401, 403), path
                assert (await owner.get(path)).status_code not in (401, 403), path
            # Changed in the settings: applied live, no restart.
            web = dataclasses.replace(config.web, camera_access="owner")
            outcome = await service.reconfigure(dataclasses.replace(config, web=web))
            assert outcome == {"applied": ["web: the camera is for owners only"], "restart_required": []}
            assert (await alice.get(paths[0])).status_code == 403
            assert (await owner.get(paths[0])).status_code == 200
            web = dataclasses.replace(config.web, camera_access="anyone")
            outcome = await service.reconfigure(dataclasses.replace(config, web=web))
            assert outcome["applied"] == ["web: the camera is for anyone on the network"]
            assert (await anon.get(paths[0])).status_code == 200
        nursery.cancel_scope.cancel()


def test_camera_access_config() -> None:
    from bambupi.config.parse import parse_config

    def web(text: str) -> tuple[object, list[tuple[str, str]]]:
        config, problems = parse_config(f"[web]\n{text}\n")
        role = config.web.camera_role if config is not None else "invalid"
        return role, [(p.key, p.message) for p in problems if p.level == "error"]

    assert web('camera_access = "owner"\ncamera_requires_login = false') == ("owner", [])
    assert web('camera_access = "anyone"\ncamera_requires_login = true') == (None, [])  # the new key wins
    assert web("camera_requires_login = true") == ("viewer", [])
    assert web("") == (None, [])
    role, errors = web('camera_access = "friends"')
    assert role == "invalid" and [key for key, _ in errors] == ["web.camera_access"]


# --- the store on its own (a real file) ------------------------------------------------------------------------------


def test_the_store_writes_atomically_expires_invitations_and_follows_the_file(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = UserStore(tmp_path / "users.json", clock=lambda: now[0])
    _, code = store.invite("alice", "operator", hours=1)
    assert UserStore(tmp_path / "users.json", clock=lambda: now[0]).invites()  # a new reader sees it
    # Expired: by the wall clock, an hour later.
    now[0] += 3601
    assert store.invite_for(code) is None
    with pytest.raises(UsersError, match="not valid"):
        store.accept(code, ALICE_PASSWORD)
    _, code = store.invite("alice", "operator")
    user = store.accept(normalise_code(code), ALICE_PASSWORD)
    assert user.role == "operator" and store.check("alice", ALICE_PASSWORD) == user
    assert store.check("alice", "wrong password") is None and store.check("nobody", ALICE_PASSWORD) is None
    # (A write that fails, on a real full disk: test_on_a_full_disk_everyone_logs_in_changes_are_refused...)
    # Another writer's change (a second store on the same file, as a hand edit) is seen at the next look.
    other = UserStore(tmp_path / "users.json", clock=lambda: now[0])
    other.set_role("alice", "viewer")
    assert store.user("alice") is not None and store.user("alice").role == "viewer"  # type: ignore[union-attr]
    with pytest.raises(UsersError, match="name:"):
        store.invite("owner", "viewer")
    with pytest.raises(UsersError, match="name:"):
        store.invite("../etc", "viewer")
    with pytest.raises(UsersError, match="has an account"):
        store.invite("ALICE", "viewer")
    assert os.stat(tmp_path / "users.json").st_mode & 0o077 == 0  # password hashes: the owner's eyes only
    document = json.loads((tmp_path / "users.json").read_text())
    assert ALICE_PASSWORD not in json.dumps(document) and document["users"][0]["password_hash"].startswith("scrypt$")


async def test_on_a_full_disk_everyone_logs_in_changes_are_refused_and_nothing_is_lost(tiny_disk: Path) -> None:
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tiny_disk)
        async with client(box) as owner, client(box) as alice:
            csrf = await setup_and_login(owner)
            await accept(alice, await invite(owner, csrf, "alice", "operator"), ALICE_PASSWORD)
            before = (tiny_disk / "users.json").read_bytes()
            filler = fill(tiny_disk)
            # Logging in only reads: the owner and alice get in (sessions live in memory).
            async with client(box) as phone:
                r = await phone.post("/api/login", json={"name": "alice", "password": ALICE_PASSWORD})
                assert r.status_code == 200
            r = await owner.post("/api/login", json={"password": PASSWORD})
            assert r.status_code == 200
            csrf = r.json()["csrf"]
            r = await owner.post("/api/users/invites", json={"name": "bob", "role": "viewer"}, headers={CSRF: csrf})
            assert r.status_code == 500 and "could not save" in r.json()["error"]
            r = await owner.patch("/api/users/alice", json={"role": "viewer"}, headers={CSRF: csrf})
            assert r.status_code == 500
            assert (tiny_disk / "users.json").read_bytes() == before
            assert not [p for p in tiny_disk.iterdir() if p.name.startswith(".users.json.")]  # no half-written file
            assert (await owner.get("/api/users")).json()["users"][1]["role"] == "operator"
            # With room again, the same change works.
            filler.unlink()
            r = await owner.patch("/api/users/alice", json={"role": "viewer"}, headers={CSRF: csrf})
            assert r.status_code == 200 and r.json()["role"] == "viewer"
        nursery.cancel_scope.cancel()


def test_one_persons_logins_push_out_only_their_own_sessions() -> None:
    now = [1000.0]
    sessions = Sessions(lifetime_s=600, clock=lambda: now[0], limit=8, per_user=3)
    owner = sessions.create(OWNER_NAME)
    made = []
    for _ in range(10):  # a viewer logging in again and again (a script, a leaked password)
        now[0] += 1
        made.append(sessions.create("bob"))
    assert sessions.get(owner.token) is owner
    assert [s for s in made if sessions.get(s.token) is not None] == made[-3:]
    assert [s.user for s in sessions.of("BOB")] == ["bob"] * 3
    assert sessions.end_one("alice", made[-1].id) is False  # not hers
    assert sessions.end_one("bob", made[-1].id) is True and sessions.get(made[-1].token) is None
    assert sessions.end_user("bob") == 2 and sessions.get(owner.token) is owner


async def test_an_invited_owner_may_everything_and_a_person_changes_their_own_password(box: Box) -> None:
    async with client(box) as owner, client(box) as carol, client(box) as other:
        csrf = await setup_and_login(owner)
        carol_csrf = await accept(carol, await invite(owner, csrf, "carol", "owner"), "carol's first one")
        assert (await carol.get("/api/settings")).status_code == 200
        assert (await carol.post("/api/users/invites", json={"name": "dave", "role": "viewer"},
                                 headers={CSRF: carol_csrf})).status_code == 200
        await other.post("/api/login", json={"name": "carol", "password": "carol's first one"})
        # A wrong current password changes nothing; the right one signs out her other sessions and keeps this one.
        r = await carol.post("/api/password", json={"current": "nope", "password": "carol's second"},
                             headers={CSRF: carol_csrf})
        assert r.status_code == 403
        r = await carol.post("/api/password", json={"current": "carol's first one", "password": "short"},
                             headers={CSRF: carol_csrf})
        assert r.status_code == 400 and r.json()["error"].startswith("password: must be at least")
        r = await carol.post("/api/password", json={"current": "carol's first one", "password": "carol's second"},
                             headers={CSRF: carol_csrf})
        assert r.status_code == 200 and r.json()["user"] == "carol"
        assert (await carol.get("/api/sessions")).status_code == 200
        assert (await other.get("/api/sessions")).status_code == 401
        async with client(box) as again:
            assert (await again.post("/api/login", json={"name": "carol", "password": "carol's first one"})
                    ).status_code == 401
            assert (await again.post("/api/login", json={"name": "carol", "password": "carol's second"})
                    ).status_code == 200
        # The first owner's password is the config file's: changed with `bambupi set-password`, not here.
        r = await owner.post("/api/password", json={"current": PASSWORD, "password": "something new"},
                             headers={CSRF: csrf})
        assert r.status_code == 400 and "set-password" in r.json()["error"]


async def test_a_browser_opening_a_page_it_needs_a_login_for_goes_to_the_login_and_back(box: Box) -> None:
    async with client(box) as anon:
        for path in ("/settings", "/users", "/sessions"):
            r = await anon.get(path, headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
            assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}", path
            # A script asking for the same path gets JSON, as every API answer.
            r = await anon.get(path)
            assert r.status_code == 401 and r.json()["status"] == 401
        assert (await anon.get("/invite")).status_code == 200  # the invitation is for people without a login yet


def test_the_timeline_names_who_asked_only_for_the_change_their_command_brought(tmp_path: Path) -> None:
    from bambupi.config import HistoryConfig
    from bambupi.history.recorder import ASKED_WITHIN_S, JobRecorder
    from bambupi.printer.tls_pins import PinStore

    now = [0.0]
    recorder = JobRecorder(
        None, (), None, HistoryConfig(), energy=None, pins=PinStore(tmp_path / "pins.json"),  # type: ignore[arg-type]
        scratch=tmp_path, fetch=None, monotonic=lambda: now[0],  # type: ignore[arg-type]
    )
    recorder.note_command("garage", "pause", "alice (the page)", None)
    assert recorder._asked_by("garage", "job_resumed") is None  # another change: not hers, and hers still waits
    assert recorder._asked_by("garage", "job_paused") == "alice (the page)"
    assert recorder._asked_by("garage", "job_paused") is None  # once: the next pause is someone else's
    # Refused or unanswered: the printer's own pause later names no one.
    recorder.note_command("garage", "pause", "bob (the page)", None)
    recorder.note_command("garage", "pause", "bob (the page)", False)
    assert recorder._asked_by("garage", "job_paused") is None
    # Too long ago: a pause from the printer's screen minutes later is not hers.
    recorder.note_command("garage", "stop", "alice (the page)", None)
    now[0] += ASKED_WITHIN_S + 1
    assert recorder._asked_by("garage", "job_cancelled") is None
    recorder.note_command("garage", "ledctrl", "alice (the page)", None)  # lights bring no timeline entry
    assert recorder._asked == {}


async def test_an_operator_switches_the_plug_a_viewer_cannot_and_the_log_names_who(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bambupi.power")
    async with trio.open_nursery() as nursery:
        sim = Simulator("P1S", SERIAL, CODE, scenario="idle", time_scale=100)
        await nursery.start(sim.run)
        plug = await nursery.start(SimulatedPlug(sim.printer).run)
        path = tmp_path / "bambupi.toml"
        path.write_text(PLUGGED_PRINTER.format(serial=SERIAL, code=CODE, mqtt_port=sim.mqtt_port, plug_url=plug.url)
                        + f'\n[storage]\npath = "{tmp_path}/bambupi.sqlite3"\n')
        config, _ = load_config(path)
        service_running = await nursery.start(Service(config, storage_folder=tmp_path).run)
        box = Box(sim, service_running, f"http://127.0.0.1:{service_running.port}", path)
        async with client(box) as owner, client(box) as alice, client(box) as bob:
            csrf = await setup_and_login(owner)
            alice_csrf = await accept(alice, await invite(owner, csrf, "alice", "operator"), ALICE_PASSWORD)
            bob_csrf = await accept(bob, await invite(owner, csrf, "bob", "viewer"), BOB_PASSWORD)
            r = await bob.post("/api/printers/garage/plug", json={"on": False}, headers={CSRF: bob_csrf})
            assert r.status_code == 403 and plug.on
            r = await alice.post("/api/printers/garage/plug", json={"on": False, "confirm": True},
                                 headers={CSRF: alice_csrf})
            assert r.status_code == 200, r.text
            assert not plug.on
            assert "garage: plug switched off by alice (the page)" in [rec.getMessage() for rec in caplog.records]
        nursery.cancel_scope.cancel()
