"""Settings and secrets under attack and faults (issue 14, items 9, 12, 19), against the real service over HTTP.

- A secret never follows a changed destination: a save that changes where a stored access code, token or key is
  sent (printer host or port, plug address or kind, notification URL, API URL or kind) is refused unless the owner
  types that secret again in the same save.
- A save never overwrites a file that changed since the page loaded it (by hand, another tab, `set-password`), and
  concurrent writers (threads of the service, other processes) never lose each other's changes.
- `bambupi set-password` takes effect at once in a running service and ends its sessions.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomlkit
import trio

from bambupi.config.file import apply_settings, edit_config, file_version, read_document, settings_view
from bambupi.secret import MASK
from bambupi.sim.plug import SimulatedPlug
from bambupi.sim.simulator import Simulator
from tests.support import CODE, PASSWORD, SERIAL, Box, current_version, save_settings

CHANGED = "the file changed since this page loaded it; reload"


def fields(r: httpx.Response) -> list[tuple[str, str]]:
    return [(f["key"], f["message"]) for f in r.json()["fields"]]


# --- item 9: a secret never follows a changed destination -----------------------------------------------------------

FILE = """\
[[printer]]
id = "garage"
model = "P1S"
host = "192.168.1.50"
serial = "01P00A000000123"
access_code = "11223344"
mqtt_port = 8883

[printer.plug]
kind = "homeassistant"
address = "http://192.168.1.9:8123"
entity = "switch.printer"
token = "ha-long-lived-token"

[[notify]]
name = "hook"
kind = "webhook"
url = "http://192.168.1.7/hook"
secret = "hmac-key"

[[notify]]
name = "phone"
kind = "ntfy"
url = "http://192.168.1.8"
topic = "garage"
token = "tk_ntfy_token"

[[notify]]
name = "bot"
kind = "telegram"
token = "123:bot-token"
chat_id = "42"
"""


def edited(change: dict[str, Any], where: str) -> tuple[str, str] | None:
    """The refusal (key, message) for one change to one entry of FILE as the page reads it, or None if accepted."""
    document = tomlkit.parse(FILE)
    view = settings_view(document)
    section, index = where.split(":")
    entry = view[section][int(index)]
    if "plug" in change:
        entry["plug"] = {**entry["plug"], **change["plug"]}
    else:
        entry.update(change)
    try:
        apply_settings(document, {section: view[section]})
    except ValueError as exc:
        key, _, message = str(exc).partition(": ")
        return key, message
    return None


@pytest.mark.parametrize(
    ("change", "where", "refusal"),
    [
        ({"host": "192.168.1.66"}, "printer:0",
         ("printer[0].access_code", "type the access code again: the printer's address changed")),
        ({"mqtt_port": 8884}, "printer:0",
         ("printer[0].access_code", "type the access code again: the printer's MQTT port changed")),
        ({"mqtt_port": None}, "printer:0",  # back to the default: another port all the same
         ("printer[0].access_code", "type the access code again: the printer's MQTT port changed")),
        ({"camera_port": 6001}, "printer:0",
         ("printer[0].access_code", "type the access code again: the printer's camera port changed")),
        ({"plug": {"address": "http://192.168.1.99:8123"}}, "printer:0",
         ("printer[0].plug.token", "type the token again: the plug's address changed")),
        ({"plug": {"kind": "tasmota", "entity": None}}, "printer:0",
         ("printer[0].plug.token", "type the token again: the plug's kind changed")),
        ({"url": "http://attacker.example/hook"}, "notify:0",
         ("notify[0].secret", "type the secret again: the channel's URL changed")),
        ({"url": "http://attacker.example"}, "notify:1",
         ("notify[1].token", "type the token again: the channel's URL changed")),
        ({"api_url": "http://attacker.example"}, "notify:2",
         ("notify[2].token", "type the token again: the channel's API URL changed")),
        ({"kind": "pushover", "chat_id": None, "user_key": "u-key"}, "notify:2",
         ("notify[2].token", "type the token again: the channel's kind changed")),
        # Typed again in the same save: the owner sends it there on purpose.
        ({"host": "192.168.1.66", "access_code": "55667788"}, "printer:0", None),
        ({"plug": {"address": "http://192.168.1.99:8123", "token": "new-token"}}, "printer:0", None),
        ({"url": "http://192.168.1.70/hook", "secret": "new-key"}, "notify:0", None),
        # The same place written another way, or nothing about the destination changed.
        ({"plug": {"address": "192.168.1.9:8123"}}, "printer:0", None),
        ({"host": "192.168.1.50", "name": "Garage", "stale_after_s": 45}, "printer:0", None),
        ({"plug": {"price_per_kwh": 0.3}}, "printer:0", None),
        # An invalid new port is the schema's to refuse (naming the port), not a reason to ask for the code.
        ({"mqtt_port": 99999}, "printer:0", None),
    ],
)
def test_a_stored_secret_is_kept_only_for_the_same_destination(
    change: dict[str, Any], where: str, refusal: tuple[str, str] | None
) -> None:
    assert edited(change, where) == refusal


async def test_a_moved_printer_gets_its_access_code_only_when_typed_again(
    logged_in: tuple[Box, httpx.AsyncClient, str],
) -> None:
    """The attack: change the printer's port to a listener of one's own and press "trust"; the box used to log in
    there with the stored access code."""
    box, client, csrf = logged_in
    accepted: list[object] = []

    async def rogue(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, rogue, 0, host="127.0.0.1"))
        rogue_port = listeners[0].socket.getsockname()[1]
        [garage] = (await client.get("/api/settings")).json()["settings"]["printer"]
        before = box.config_path.read_bytes()
        r = await save_settings(client, csrf, {"printer": [{**garage, "mqtt_port": rogue_port}]})
        assert r.status_code == 400, r.text
        assert fields(r) == [("printer[0].access_code", "type the access code again: the printer's MQTT port changed")]
        assert CODE not in r.text
        assert box.config_path.read_bytes() == before
        # "Trust" still goes where the printer is: the file and the running link kept the old port.
        r = await client.post("/api/printers/garage/trust", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        assert box.running.links["garage"].config.mqtt_port == box.sim.mqtt_port
        assert accepted == []

        # The printer really moved (a new port, a new access code): typed again, the box follows it.
        moved = Simulator("P1S", SERIAL, "99887766", scenario="idle", time_scale=100)
        await nursery.start(moved.run)
        [garage] = (await client.get("/api/settings")).json()["settings"]["printer"]
        moved_garage = {**garage, "mqtt_port": moved.mqtt_port, "access_code": "99887766"}
        r = await save_settings(client, csrf, {"printer": [moved_garage]})
        assert r.status_code == 200, r.text
        with trio.fail_after(30):
            while moved.connected_clients == 0 or (
                (await client.get("/api/printers/garage")).json()["connection"] != "online"
            ):
                await trio.sleep(0.05)
        assert 'access_code = "99887766"' in box.config_path.read_text()
        nursery.cancel_scope.cancel()


async def test_a_plugs_token_does_not_follow_a_new_address(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    box, client, csrf = logged_in
    async with trio.open_nursery() as nursery:
        plug = await nursery.start(SimulatedPlug(box.sim.printer, password="plug-pass-123").run)
        other = await nursery.start(SimulatedPlug(box.sim.printer, password="other-pass-456").run)
        [garage] = (await client.get("/api/settings")).json()["settings"]["printer"]
        garage["plug"] = {"kind": "tasmota", "address": plug.url, "password": "plug-pass-123"}
        assert (await save_settings(client, csrf, {"printer": [garage]})).status_code == 200
        [garage] = (await client.get("/api/settings")).json()["settings"]["printer"]
        assert garage["plug"]["password"] == MASK
        before = box.config_path.read_bytes()

        r = await save_settings(
            client, csrf, {"printer": [{**garage, "plug": {**garage["plug"], "address": other.url}}]}
        )
        assert r.status_code == 400, r.text
        assert fields(r) == [("printer[0].plug.password", "type the password again: the plug's address changed")]
        assert box.config_path.read_bytes() == before and "plug-pass-123" not in r.text

        # Typed again: the new plug is read with its own password.
        plug_view = {**garage["plug"], "address": other.url, "password": "other-pass-456"}
        r = await save_settings(client, csrf, {"printer": [{**garage, "plug": plug_view}]})
        assert r.status_code == 200, r.text
        with trio.fail_after(30):  # the plug only counts commands that came with its own password
            while not other.commands:
                await trio.sleep(0.05)
        assert "other-pass-456" in box.config_path.read_text() and "plug-pass-123" not in box.config_path.read_text()
        nursery.cancel_scope.cancel()


async def test_a_channels_token_does_not_follow_a_new_server(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    box, client, csrf = logged_in
    channel = {"name": "phone", "kind": "ntfy", "topic": "garage", "url": "http://127.0.0.1:9", "token": "tk_stored_1"}
    assert (await save_settings(client, csrf, {"notify": [channel]})).status_code == 200
    [phone] = (await client.get("/api/settings")).json()["settings"]["notify"]
    before = box.config_path.read_bytes()
    r = await save_settings(client, csrf, {"notify": [{**phone, "url": "http://127.0.0.2:9"}]})
    assert r.status_code == 400 and fields(r) == [
        ("notify[0].token", "type the token again: the channel's URL changed")
    ], r.text
    assert box.config_path.read_bytes() == before and "tk_stored_1" not in r.text
    # A Discord channel's URL is its secret: a new one typed is just a new secret, nothing else to type.
    discord = {"name": "chat", "kind": "discord", "url": "http://127.0.0.1:9/api/webhooks/1/key"}
    assert (await save_settings(client, csrf, {"notify": [phone, discord]})).status_code == 200
    phone, chat = (await client.get("/api/settings")).json()["settings"]["notify"]
    r = await save_settings(client, csrf, {"notify": [phone, {**chat, "url": "http://127.0.0.1:9/api/webhooks/2/key2"}]})
    assert r.status_code == 200, r.text


# --- item 12: no save overwrites a change it did not see ------------------------------------------------------------

HAND_ADDED = """
[[printer]]   # added over SSH while the settings page was open
id = "loft"
model = "A1"
host = "127.0.0.1"
serial = "03919A000000001"
access_code = "87654321"
mqtt_port = 9
"""


async def test_a_printer_added_by_hand_after_the_page_loaded_is_not_removed(
    logged_in: tuple[Box, httpx.AsyncClient, str],
) -> None:
    box, client, csrf = logged_in
    loaded = (await client.get("/api/settings")).json()
    box.config_path.write_text(box.config_path.read_text() + HAND_ADDED)
    edited_by_hand = box.config_path.read_bytes()
    [garage] = loaded["settings"]["printer"]
    r = await save_settings(client, csrf, {"printer": [{**garage, "name": "Garage"}]}, loaded["version"])
    assert r.status_code == 409 and r.json()["error"] == CHANGED, r.text
    assert box.config_path.read_bytes() == edited_by_hand
    # Without a version there is no knowing what the page saw: refused too.
    r = await client.post("/api/settings", json={"settings": {"printer": [garage]}}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 400 and r.json()["error"].startswith("version: required")
    assert box.config_path.read_bytes() == edited_by_hand
    # Reloaded, the page shows both printers and its save keeps the hand-added one.
    reloaded = (await client.get("/api/settings")).json()
    assert [p["id"] for p in reloaded["settings"]["printer"]] == ["garage", "loft"]
    garage, loft = reloaded["settings"]["printer"]
    r = await save_settings(client, csrf, {"printer": [{**garage, "name": "Garage"}, loft]}, reloaded["version"])
    assert r.status_code == 200, r.text
    assert r.json()["version"] == file_version(box.config_path.read_bytes()) == await current_version(client)
    text = box.config_path.read_text()
    assert "# added over SSH" in text and 'access_code = "87654321"' in text and 'name = "Garage"' in text


async def test_25_concurrent_saves_each_land_fully_or_are_refused(
    logged_in: tuple[Box, httpx.AsyncClient, str],
) -> None:
    """25 pages save at once, each adding its own channel to what it loaded; a refused page reloads and saves
    again, as its owner would. Every change that was answered 200 is in the file; every other answer is 409."""
    box, client, csrf = logged_in
    answers: list[int] = []
    landed: list[str] = []

    async def page(n: int) -> None:
        mine = {"name": f"ch{n:02d}", "kind": "webhook", "url": f"http://127.0.0.1:9/h{n}"}
        with trio.fail_after(300):
            while True:
                loaded = (await client.get("/api/settings")).json()
                r = await save_settings(
                    client, csrf, {"notify": [*loaded["settings"]["notify"], mine]}, loaded["version"]
                )
                answers.append(r.status_code)
                if r.status_code == 200:
                    landed.append(mine["name"])
                    return
                assert r.status_code == 409 and r.json()["error"] == CHANGED, r.text

    async with trio.open_nursery() as nursery:
        for n in range(25):
            nursery.start_soon(page, n)
    in_file = [t["name"] for t in tomlkit.parse(box.config_path.read_text()).unwrap()["notify"]]
    assert sorted(in_file) == sorted(landed) == [f"ch{n:02d}" for n in range(25)]
    assert set(answers) <= {200, 409} and answers.count(200) == 25
    assert box.running.notifier is not None and sorted(box.running.notifier.channels) == sorted(landed)


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bambupi.config.file import edit_config

    path, who, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for i in range(count):
        def edit(document, key=f"{who}_{i}"):
            document["camera"][key] = 1  # not a camera key: a warning, never an error
        edit_config(path, edit)
    """
)


def test_concurrent_writers_in_threads_and_processes_lose_nothing(tmp_path: Path) -> None:
    """The service's worker threads and `bambupi set-password` in another process write the same file: each
    read-change-write is one step (under one lock), so every change lands."""
    path = tmp_path / "bambupi.toml"
    path.write_text("# hand-written\n[camera]\n")

    def thread_writer(who: str) -> None:
        for i in range(10):
            def edit(document: Any, key: str = f"{who}_{i}") -> None:
                document["camera"][key] = 1
            edit_config(path, edit)

    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{n}", "10"]) for n in range(3)
    ]
    threads = [threading.Thread(target=thread_writer, args=(f"t{n}",)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0]
    keys = set(read_document(path)["camera"])
    assert keys == {f"{who}_{i}" for who in ("t0", "t1", "t2", "t3", "t4", "p0", "p1", "p2") for i in range(10)}
    assert path.read_text().startswith("# hand-written\n")


# --- item 19: set-password takes effect at once -----------------------------------------------------------------------

def set_password_cli(path: Path, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bambupi", "set-password", "-c", str(path)],
        input=password + "\n", capture_output=True, text=True, timeout=120,
    )


async def test_set_password_takes_effect_at_once_and_ends_sessions(
    logged_in: tuple[Box, httpx.AsyncClient, str],
) -> None:
    box, owner, csrf = logged_in
    loaded = await current_version(owner)
    async with httpx.AsyncClient(base_url=box.base) as other:
        assert (await other.post("/api/login", json={"password": PASSWORD})).status_code == 200
        assert (await other.get("/api/settings")).status_code == 200

        done = await trio.to_thread.run_sync(set_password_cli, box.config_path, "a brand new password")
        assert done.returncode == 0, done.stderr
        assert "uses it at once" in done.stdout and "a brand new password" not in done.stdout + done.stderr

        # Every session made with the old password is over, for every kind of request.
        assert (await other.get("/api/settings")).status_code == 401
        assert (await owner.get("/api/session")).json()["logged_in"] is False
        r = await owner.post("/api/printers/garage/commands", json={"command": "light_on"},
                             headers={"X-CSRF-Token": csrf})
        assert r.status_code == 401
        assert (await other.post("/api/login", json={"password": PASSWORD})).status_code == 401
        r = await owner.post("/api/login", json={"password": "a brand new password"})
        assert r.status_code == 200, r.text
        # A page loaded before the command cannot write over it.
        r = await save_settings(owner, r.json()["csrf"], {"web": {"session_hours": 2}}, loaded)
        assert r.status_code == 409 and r.json()["error"] == CHANGED


async def test_a_file_broken_by_hand_does_not_reopen_the_first_visit(
    logged_in: tuple[Box, httpx.AsyncClient, str],
) -> None:
    """A file whose hash cannot be read (a bad hand edit) keeps the password in use: a visitor cannot claim the box."""
    box, client, _ = logged_in
    box.config_path.write_text(box.config_path.read_text().replace("admin_password_hash", "admin_password_hash = ["))
    async with httpx.AsyncClient(base_url=box.base) as visitor:
        assert (await visitor.get("/api/session")).json()["password_set"] is True
        assert (await visitor.post("/api/setup", json={"password": "the visitor's own"})).status_code == 409
        assert (await visitor.post("/api/login", json={"password": PASSWORD})).status_code == 200
    assert (await client.get("/api/session")).json()["logged_in"] is True
