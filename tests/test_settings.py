"""Settings: read (secrets masked) and write through the API, comments kept, atomic writes, live reconfigure."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import tomlkit
import trio

from bambupi.config import parse_config
from bambupi.config.file import file_version, write_config_text
from bambupi.printer.tls_pins import PinStore
from bambupi.secret import MASK
from bambupi.sim.plug import SimulatedPlug
from tests.support import CODE, CSRF, Box, current_version, save_settings, start_box


async def test_settings_need_the_owner(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        box = await start_box(nursery, tmp_path)
        async with httpx.AsyncClient(base_url=box.base) as anon:
            assert (await anon.get("/api/settings")).status_code == 401
            assert (await anon.post("/api/settings", json={"settings": {}})).status_code == 401
            assert (await anon.post("/api/printers/garage/trust")).status_code == 401
        nursery.cancel_scope.cancel()


async def test_read_masks_secrets_and_shows_the_pin(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    _, client, _ = logged_in
    r = await client.get("/api/settings")
    assert r.status_code == 200
    body = r.json()
    printer = body["settings"]["printer"][0]
    assert printer["id"] == "garage" and printer["access_code"] == MASK and printer["name"] is None
    assert body["settings"]["web"]["admin_password_hash"] == MASK
    assert body["pins"]["garage"].startswith("sha256:")
    assert CODE.encode() not in r.content and b"scrypt$" not in r.content


async def test_edit_keeps_comments_and_reconnects_the_printer(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    box, client, csrf = logged_in
    old_link = box.running.links["garage"]
    printer = (await client.get("/api/settings")).json()["settings"]["printer"][0]
    printer.update(name="Garage P1S", stale_after_s=45)
    r = await save_settings(client, csrf, {"printer": [printer]})
    assert r.status_code == 200, r.text

    assert r.json()["applied"] == ["printer garage reconnected with its new settings"]
    text = box.config_path.read_text()
    for comment in ("# my box — keep this comment", "# the one in the garage", "# loopback only"):
        assert comment in text
    assert f'access_code = "{CODE}"' in text  # the masked secret was left as it was
    assert 'name = "Garage P1S"' in text and "stale_after_s = 45" in text
    with trio.fail_after(30):
        while box.running.links["garage"] is old_link or not box.running.links["garage"].connects or (
            (await client.get("/api/printers/garage")).json()["connection"] != "online"
        ):
            await trio.sleep(0.05)
    assert (await client.get("/api/printers/garage")).json()["name"] == "Garage P1S"


async def test_invalid_settings_name_the_field_and_write_nothing(
    logged_in: tuple[Box, httpx.AsyncClient, str],
) -> None:
    box, client, csrf = logged_in
    before = box.config_path.read_bytes()
    printer = (await client.get("/api/settings")).json()["settings"]["printer"][0]
    for change, key in [
        ({"printer": [{**printer, "access_code": "123"}]}, "printer[0].access_code"),
        ({"printer": [{**printer, "mqtt_port": 99999}]}, "printer[0].mqtt_port"),
        ({"printer": [{**printer, "colour": "red"}]}, "printer[0].colour"),
        ({"web": {"admin_password_hash": "scrypt$1$1$1$AAAA$AAAA"}}, "web.admin_password_hash"),
        ({"nonsense": {}}, "nonsense"),
    ]:
        r = await save_settings(client, csrf, change)
        assert r.status_code == 400, change
        assert [f["key"] for f in r.json()["fields"]] == [key]
        assert b"123" not in r.content or key != "printer[0].access_code"
    assert box.config_path.read_bytes() == before


async def test_printers_can_be_added_and_removed_live(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    _, client, csrf = logged_in
    printer = (await client.get("/api/settings")).json()["settings"]["printer"][0]
    second = {"id": "loft", "model": "A1", "host": "127.0.0.1", "serial": "03919A000000001",
              "access_code": "87654321", "mqtt_port": 9}
    r = await save_settings(client, csrf, {"printer": [printer, second]})
    assert r.status_code == 200, r.text

    assert r.json()["applied"] == ["printer loft added"]
    ids = [p["id"] for p in (await client.get("/api/printers")).json()]
    assert ids == ["garage", "loft"]
    with trio.fail_after(30):  # its link runs at once: it tried the (closed) port and says why it failed
        while (await client.get("/api/printers/loft")).json()["connection_reason"] is None:
            await trio.sleep(0.05)
    assert "87654321" not in (await client.get("/api/settings")).text
    r = await save_settings(client, csrf, {"printer": [printer]})
    assert r.json()["applied"] == ["printer loft removed"]
    assert (await client.get("/api/printers/loft")).status_code == 404


async def test_notification_channels_are_edited_live(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    box, client, csrf = logged_in
    channel = {"name": "phone", "kind": "ntfy", "topic": "garage-alerts", "url": "http://127.0.0.1:9",
               "token": "tk_very_secret", "events": ["finished", "hms"], "progress": [50]}
    r = await save_settings(client, csrf, {"notify": [channel]})
    assert r.status_code == 200, r.text

    assert r.json()["applied"] == ["notification channels updated"]
    assert box.running.notifier is not None and list(box.running.notifier.channels) == ["phone"]
    assert box.running.notifier.channels["phone"].config.events == ("finished", "hms")
    view = await client.get("/api/settings")
    assert view.json()["settings"]["notify"][0]["token"] == MASK and b"tk_very_secret" not in view.content
    assert view.json()["settings"]["notify"][0]["progress"] == [50]
    assert "events = [" in box.config_path.read_text()
    read = view.json()["settings"]["notify"][0]
    # ntfy's server is an address, not a secret: shown as it is (a Discord or webhook URL carries a token: masked).
    assert read["url"] == "http://127.0.0.1:9"
    r = await save_settings(client, csrf, {"notify": [{**read, "kind": "pushover", "token": "tk_pushover_app"}]})
    # A pushover channel needs a user key, and takes no ntfy topic or server: each is named, none ignored.
    assert r.status_code == 400 and {f["key"] for f in r.json()["fields"]} == {
        "notify[0].user_key", "notify[0].topic", "notify[0].url"}
    pushover = {**read, "kind": "pushover", "token": "tk_pushover_app", "topic": None, "url": None}
    r = await save_settings(client, csrf, {"notify": [pushover]})
    assert r.status_code == 400 and {f["key"] for f in r.json()["fields"]} == {"notify[0].user_key"}, r.text
    r = await save_settings(client, csrf, {"notify": [{**pushover, "user_key": "uk_pushover_user"}]})
    assert r.status_code == 200, r.text
    assert "127.0.0.1:9" not in box.config_path.read_text() and "uk_pushover_user" in box.config_path.read_text()


async def test_trust_pins_the_certificate_the_printer_presents(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    box, client, csrf = logged_in
    pinned = (await client.get("/api/settings")).json()["pins"]["garage"]
    pins = PinStore(box.config_path.parent / "tls-pins.json")
    pins.set("garage/camera", "sha256:" + "1" * 64)  # a camera pin from before the firmware update
    r = await client.post("/api/printers/garage/trust", headers={CSRF: csrf})
    assert r.status_code == 200 and r.json()["fingerprint"] == pinned == r.json()["previous"]
    assert pins.get("garage/camera") is None  # taken afresh at the camera's next connection
    assert (await client.post("/api/printers/nope/trust", headers={CSRF: csrf})).status_code == 404


def test_a_crash_between_write_and_rename_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "bambupi.toml"
    path.write_text("# old\n[web]\n")
    crash = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        import bambupi.config.file as cf
        os.replace = lambda a, b: os.kill(os.getpid(), signal.SIGKILL)
        cf.write_config_text(Path({str(path)!r}), "# new\\n")
        """
    )
    done = subprocess.run([sys.executable, "-c", crash])
    assert done.returncode == -9
    assert path.read_text() == "# old\n[web]\n"
    write_config_text(path, "# new\n")
    assert path.read_text() == "# new\n"
    assert (tmp_path / "bambupi.toml.bak").read_text() == "# old\n[web]\n"
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".bambupi.toml.")]
    assert len(leftovers) == 1  # the killed writer's temporary file; the real file was never touched


async def test_a_config_file_broken_by_hand_is_explained_not_a_500(
    logged_in: tuple[Box, httpx.AsyncClient, str],
) -> None:
    box, client, csrf = logged_in
    loaded = await current_version(client)
    text = box.config_path.read_text()
    # Edited over SSH while bambupi runs: the access code lost its quotes. tomlkit's own message would quote the
    # character it stopped at, a character of the code.
    box.config_path.write_text(text.replace(f'access_code = "{CODE}"', "access_code = 11x23344"))
    r = await client.get("/api/settings")
    assert r.status_code == 409, r.text
    assert "cannot be read" in r.json()["error"] and r.json()["fields"][0]["line"] == 13
    assert "'x'" not in r.text and "11x23344" not in r.text
    printer = {"id": "garage", "model": "P1S", "host": "127.0.0.1", "serial": "01P00A000000123"}
    r = await save_settings(client, csrf, {"printer": [printer]}, loaded)  # the page loaded before the edit
    assert r.status_code == 409 and "reload" in r.json()["error"]
    # Even a save made against the broken file itself is explained, not a 500.
    r = await save_settings(client, csrf, {"printer": [printer]}, file_version(box.config_path.read_bytes()))
    assert r.status_code == 400 and r.json()["fields"][0]["line"] == 13
    assert "'x'" not in r.text
    assert "11x23344" in box.config_path.read_text()  # nothing was written over the owner's file


async def test_tokens_with_characters_no_service_issues_are_refused(
    logged_in: tuple[Box, httpx.AsyncClient, str],
) -> None:
    box, client, csrf = logged_in
    before = box.config_path.read_bytes()
    channel = {"name": "phone", "kind": "ntfy", "topic": "garage"}
    for change, key in [
        # Pasted from a web page with a zero-width space; httpx cannot put it in an Authorization header.
        ({"notify": [{**channel, "token": "tk_pasted\u200b_secret"}]}, "notify[0].token"),
        ({"notify": [{**channel, "token": "tk_two\nlines_secret"}]}, "notify[0].token"),
        ({"notify": [{"name": "phone", "kind": "webhook", "url": "http://127.0.0.1:9/h", "secret": "a\nb_secret"}]},
         "notify[0].secret"),
    ]:
        r = await save_settings(client, csrf, change)
        assert r.status_code == 400, (change, r.text)
        assert [f["key"] for f in r.json()["fields"]] == [key]
        assert "_secret" not in r.text
    assert box.config_path.read_bytes() == before
    r = await save_settings(client, csrf, {"notify": [{**channel, "token": "tk_fine-token_1"}]})
    assert r.status_code == 200, r.text

    # The same rule for a plug's token, through the settings page and in the file (check-config).
    printers = (await client.get("/api/settings")).json()["settings"]["printer"]
    printers[0]["plug"] = {"kind": "homeassistant", "address": "http://127.0.0.1:9", "entity": "switch.printer",
                           "token": "ey.h\u00e4_secret"}
    r = await save_settings(client, csrf, {"printer": printers})
    assert r.status_code == 400 and [f["key"] for f in r.json()["fields"]] == ["printer[0].plug.token"]
    assert "_secret" not in r.text
    plug = '[[printer]]\nid = "p"\nmodel = "P1S"\nhost = "127.0.0.1"\nserial = "01P00A000000123"\n' \
        'access_code = "11223344"\n[printer.plug]\nkind = "homeassistant"\naddress = "http://127.0.0.1:9"\n' \
        'entity = "switch.printer"\ntoken = "ey.h\u00e4_secret"\n'
    config, problems = parse_config(plug)
    assert config is None and [(p.key, p.line) for p in problems] == [("printer[0].plug.token", 11)]
    assert "_secret" not in str(problems[0])



async def test_panel_and_quiet_hours_are_applied_live(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    box, client, csrf = logged_in
    before = box.running.panel
    assert before is not None and (await client.get("/api/panel")).json()["hardware"]["gpio"] == "none"
    settings = {"panel": {"oled": "virtual", "gpio": "virtual", "buzzer": "passive", "rotate_s": 5},
                "alerts": {"quiet_hours": "22:00-07:00", "time_zone": "Europe/Berlin"}}
    r = await save_settings(client, csrf, settings)
    assert r.status_code == 200, r.text
    assert r.json()["applied"] == [
        "quiet hours and time zone updated (panel and notifications)", "panel restarted with its new settings"
    ]
    assert r.json()["restart_required"] == []
    panel = box.running.panel
    assert panel is not None and panel is not before
    assert panel.config.buzzer == "passive" and panel.config.rotate_s == 5
    quiet_hours = box.running.quiet_hours
    assert panel.quiet_hours is quiet_hours  # one rule for the panel and the notifier
    assert quiet_hours.alerts.quiet_hours is not None and str(quiet_hours.tz) == "Europe/Berlin"
    status = (await client.get("/api/panel")).json()
    assert status["hardware"] == {"oled": "virtual", "gpio": "virtual"} and status["buzzer"]["kind"] == "passive"
    png = await client.get("/api/panel.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    # The notifier asks the same quiet hours, changed live.
    assert box.running.notifier is not None
    quiet_hours.clock_synced = lambda: True
    quiet_hours.wall = lambda: 1_700_000_000.0  # 2023-11-14 22:13 UTC = 23:13 in Berlin
    assert box.running.notifier.quiet() is True and panel.quiet() is True
    quiet_hours.wall = lambda: 1_700_000_000.0 + 3600 * 12  # 11:13 in Berlin
    assert box.running.notifier.quiet() is False
    # The old panel's event queue is closed: it no longer holds the hub's events.
    assert [q.name for q in box.running.hub._queues].count("panel") == 1


async def test_a_printers_smart_plug_is_set_and_removed_live(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    box, client, csrf = logged_in
    async with trio.open_nursery() as nursery:
        plug = await nursery.start(SimulatedPlug(box.sim.printer, password="plug-pass-123").run)
        printers = (await client.get("/api/settings")).json()["settings"]["printer"]
        assert printers[0]["plug"] is None
        assert (await client.get("/api/power")).json()["printers"]["garage"]["plug"] is None
        printers[0]["plug"] = {"kind": "tasmota", "address": plug.url, "password": "plug-pass-123",
                               "price_per_kwh": 0.3}
        r = await save_settings(client, csrf, {"printer": printers})
        assert r.status_code == 200, r.text
        assert r.json()["applied"] == ["printer garage: smart plug set"]  # the MQTT link was left alone
        with trio.fail_after(30):  # sampled at once, without a restart
            while (await client.get("/api/power")).json()["printers"]["garage"].get("reading") is None:
                await trio.sleep(0.1)
        text = box.config_path.read_text()
        assert "[printer.plug]" in text and "# the one in the garage" in text and "plug-pass-123" in text
        view = await client.get("/api/settings")
        assert view.json()["settings"]["printer"][0]["plug"]["password"] == MASK
        assert b"plug-pass-123" not in view.content

        printers = view.json()["settings"]["printer"]
        printers[0]["plug"] = None
        r = await save_settings(client, csrf, {"printer": printers})
        assert r.status_code == 200, r.text
        assert r.json()["applied"] == ["printer garage: smart plug removed"]
        assert (await client.get("/api/power")).json()["printers"]["garage"]["plug"] is None
        assert "[printer.plug]" not in box.config_path.read_text()
        nursery.cancel_scope.cancel()


# --- identity of [[notify]] and [[printer]] entries: a secret stays with its own entry --------------------------------

ALPHA = {"name": "alpha", "kind": "webhook", "url": "http://127.0.0.1:9/alpha-url", "secret": "alpha-hmac-secret"}
BETA = {"name": "beta", "kind": "ntfy", "url": "http://127.0.0.1:9/beta-url", "topic": "beta-topic",
        "token": "tk_beta_token"}
DELTA = {"name": "delta", "kind": "webhook", "url": "http://127.0.0.1:9/delta-url", "secret": "delta-hmac-secret"}
# beta's URL is its ntfy server: an address, shown on the page, no secret.
CHANNEL_SECRETS = ("alpha-url", "alpha-hmac-secret", "tk_beta_token", "delta-url", "delta-hmac-secret")


def channels_in_file(path: Path) -> dict[str, dict[str, object]]:
    """Each channel's kind and secrets as the file holds them, by name, in file order."""
    tables = tomlkit.parse(path.read_text()).unwrap().get("notify", [])
    return {t["name"]: {k: t.get(k) for k in ("kind", "url", "topic", "token", "secret")} for t in tables}


def own(channel: dict[str, str]) -> dict[str, object]:
    return {k: channel.get(k) for k in ("kind", "url", "topic", "token", "secret")}


async def view(client: httpx.AsyncClient, section: str) -> list[dict[str, object]]:
    r = await client.get("/api/settings")
    assert r.status_code == 200, r.text
    for secret in CHANNEL_SECRETS:
        assert secret not in r.text
    return list(r.json()["settings"][section])


async def test_each_channel_keeps_its_own_url_token_and_secret(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    box, client, csrf = logged_in
    r = await save_settings(client, csrf, {"notify": [ALPHA, BETA]})
    assert r.status_code == 200, r.text
    assert channels_in_file(box.config_path) == {"alpha": own(ALPHA), "beta": own(BETA)}

    # Saved again as the page sends it: every secret masked or left out, each entry with the identity it was read with.
    alpha, beta = await view(client, "notify")
    assert alpha["url"] == MASK and beta["token"] == MASK and alpha["_ref"] != beta["_ref"]
    assert beta["url"] == BETA["url"]
    r = await save_settings(client, csrf, {"notify": [alpha, {**beta, "token": ""}]})
    assert r.status_code == 200, r.text
    assert channels_in_file(box.config_path) == {"alpha": own(ALPHA), "beta": own(BETA)}

    # Renamed: the channel keeps its own secrets under its new name.
    alpha, beta = await view(client, "notify")
    r = await save_settings(client, csrf, {"notify": [alpha, {**beta, "name": "gamma"}]})
    assert r.status_code == 200, r.text
    assert channels_in_file(box.config_path) == {"alpha": own(ALPHA), "gamma": own(BETA)}

    # A third one added after them.
    alpha, gamma = await view(client, "notify")
    r = await save_settings(client, csrf, {"notify": [alpha, gamma, DELTA]})
    assert r.status_code == 200, r.text
    assert channels_in_file(box.config_path) == {"alpha": own(ALPHA), "gamma": own(BETA), "delta": own(DELTA)}

    # The first removed: its secrets leave the file with it; the others keep theirs.
    _, gamma, delta = await view(client, "notify")
    r = await save_settings(client, csrf, {"notify": [gamma, delta]})
    assert r.status_code == 200, r.text
    assert channels_in_file(box.config_path) == {"gamma": own(BETA), "delta": own(DELTA)}
    assert "alpha-hmac-secret" not in box.config_path.read_text()

    # The second (last) removed.
    gamma, _ = await view(client, "notify")
    r = await save_settings(client, csrf, {"notify": [gamma]})
    assert r.status_code == 200, r.text
    assert channels_in_file(box.config_path) == {"gamma": own(BETA)}
    assert "delta-hmac-secret" not in box.config_path.read_text()

    # The running notifier got the same: the survivor posts to its own URL with its own token.
    notifier = box.running.notifier
    assert notifier is not None and list(notifier.channels) == ["gamma"]
    config = notifier.channels["gamma"].config
    assert config.url == BETA["url"] and config.token is not None and config.token.reveal() == BETA["token"]


async def test_a_save_that_would_lose_or_move_a_secret_is_refused(
    logged_in: tuple[Box, httpx.AsyncClient, str],
) -> None:
    box, client, csrf = logged_in
    assert (await save_settings(client, csrf, {"notify": [ALPHA, BETA]})).status_code == 200
    alpha, beta = await view(client, "notify")
    loaded = await current_version(client)
    # Edited by hand (or in another tab) after this page loaded it.
    box.config_path.write_text(box.config_path.read_text().replace('"beta-topic"', '"beta-elsewhere"'))
    before = box.config_path.read_bytes()
    r = await save_settings(client, csrf, {"notify": [alpha, beta]}, loaded)
    assert r.status_code == 409 and r.json()["error"] == "the file changed since this page loaded it; reload"
    # Behind the file's version, each entry's identity: a save that has the file's new version but entries read
    # before it (a client that mixes two reads) still cannot undo the change or move a secret.
    refusals = [
        ([alpha, beta], "notify[1]", "'beta' changed in the file since the page loaded it"),
        ([alpha, {**beta, "_ref": "made-up"}], "notify[1]", "'beta' changed in the file since the page loaded it"),
        ([alpha, {**alpha, "name": "alpha2"}], "notify[1]", "'alpha2' claims the same entry as notify[0]"),
        ([alpha, {**DELTA, "secret": MASK}], "notify[1].secret", "no stored value to keep"),
    ]
    for channels, key, message in refusals:
        r = await save_settings(client, csrf, {"notify": channels})
        assert r.status_code == 400, (channels, r.text)
        assert [(f["key"], message in f["message"]) for f in r.json()["fields"]] == [(key, True)], r.text
        assert "nothing was saved" in r.json()["error"]
        for secret in CHANNEL_SECRETS:
            assert secret not in r.text
    assert box.config_path.read_bytes() == before

    # Read again, the same change goes through.
    alpha, beta = await view(client, "notify")
    assert beta["topic"] == "beta-elsewhere"
    assert (await save_settings(client, csrf, {"notify": [alpha, beta]})).status_code == 200
    assert channels_in_file(box.config_path)["beta"]["token"] == BETA["token"]


async def test_each_printer_keeps_its_own_access_code(logged_in: tuple[Box, httpx.AsyncClient, str]) -> None:
    box, client, csrf = logged_in
    loft = {"id": "loft", "model": "A1", "host": "127.0.0.1", "serial": "03919A000000001",
            "access_code": "87654321", "mqtt_port": 9}
    [garage] = await view(client, "printer")
    assert (await save_settings(client, csrf, {"printer": [garage, loft]})).status_code == 200

    def codes() -> dict[str, str]:
        tables = tomlkit.parse(box.config_path.read_text()).unwrap()["printer"]
        return {t["id"]: t["access_code"] for t in tables}

    assert codes() == {"garage": CODE, "loft": "87654321"}
    garage, loft_view = await view(client, "printer")
    r = await save_settings(client, csrf, {"printer": [{**loft_view, "id": "attic"}, garage]})  # reordered, one renamed
    assert r.status_code == 200, r.text
    assert codes() == {"attic": "87654321", "garage": CODE}
    _, garage = await view(client, "printer")
    r = await save_settings(client, csrf, {"printer": [garage]})
    assert r.status_code == 200, r.text
    assert codes() == {"garage": CODE} and "87654321" not in box.config_path.read_text()
    # A printer sent without the identity it was read with is new: it cannot keep a hidden code.
    r = await save_settings(client, csrf, {"printer": [{k: v for k, v in garage.items() if k != "_ref"}]})
    assert r.status_code == 400 and [f["key"] for f in r.json()["fields"]] == ["printer[0].access_code"]
    assert codes() == {"garage": CODE}
