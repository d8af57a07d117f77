"""The copy on Spoolman, against a real HTTP stand-in of its API (tests/spoolman_server.py): spools, filaments and
vendors made once, weights and places kept up to date, and a server that is down, wrong or huge shown and retried
while nothing of the box's is lost."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from bambupi.config import FilamentConfig
from bambupi.database import Database
from bambupi.filament import spools
from bambupi.filament.spoolman import SpoolmanError, SpoolmanSync
from bambupi.filament.spools import Location, NewSpool, Sighting
from tests.plug_servers import FakePlugServer
from tests.spoolman_server import Spoolman


@pytest.fixture
def store(tmp_path: Path) -> Database:
    db = Database(tmp_path / "bambupi.sqlite3")
    spools.observe(db, [Sighting(Location("ams", "p2s", 0, 0), empty=False, rfid="AB" * 16, material="PLA",
                                 colour="#FFFFFF", net_g=1000.0, remaining_g=410.0, tray_info_idx="GFA01")],
                   now=1.0, low_g=100)  # fmt: skip
    spools.add(db, NewSpool("PETG", "", "", None, None), now=2.0, low_g=100)
    return db


def sync_for(store: Database, url: str, **kw: float) -> SpoolmanSync:
    return SpoolmanSync(store, lambda: FilamentConfig(spoolman_url=url, spoolman_sync_s=60), **kw)  # type: ignore[arg-type]


async def test_the_spools_are_copied_once_and_kept_up_to_date(store: Database) -> None:
    spoolman = Spoolman()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(FakePlugServer(spoolman).run)
        sync = sync_for(store, server.url)
        async with httpx.AsyncClient() as client:
            assert await sync.sync_once(client, server.url) == 2
            assert await sync.sync_once(client, server.url) == 0  # nothing changed: nothing sent
            tagged = spools.at(store, Location("ams", "p2s", 0, 0))
            assert tagged is not None and tagged["spoolman_id"] is not None
            copy = spoolman.spools[tagged["spoolman_id"]]
            assert (copy["remaining_weight"], copy["location"], copy["comment"]) == (
                410.0, "p2s: AMS 1 slot 1", f"bambupi spool {tagged['id']}")
            filament = spoolman.filaments[copy["filament_id"]]
            assert (filament["material"], filament["color_hex"], filament["weight"], filament["density"]) == (
                "PLA", "ffffff", 1000.0, 1.24)
            assert [v["name"] for v in spoolman.vendors.values()] == ["Bambu Lab"]
            # A job took 10 g: the weight is set (the same however often it is sent), no new spool made.
            spools.take(store, 1, {tagged["id"]: 10.0}, now=3.0, low_g=100)
            assert await sync.sync_once(client, server.url) == 1
            assert copy["remaining_weight"] == 400.0 and len(spoolman.spools) == 2
            # Deleted in Spoolman: made again, of the same filament.
            del spoolman.spools[tagged["spoolman_id"]]
            spools.take(store, 2, {tagged["id"]: 1.0}, now=4.0, low_g=100)
            assert await sync.sync_once(client, server.url) == 1
            assert len(spoolman.spools) == 2 and len(spoolman.filaments) == 2
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "trouble,words",
    [
        ("fail_with", "HTTP 500 for the vendors"),
        ("malformed", "not JSON: is this a Spoolman server?"),
        ("huge", "larger than 1024 KiB"),
        ("down", "cannot reach 127.0.0.1 (ConnectError)"),
        ("slow", "no answer for the vendors within 0.5 s"),
    ],
)
async def test_a_server_in_trouble_is_a_reason_in_words_and_nothing_is_lost(
    store: Database, trouble: str, words: str
) -> None:
    spoolman = Spoolman()
    before = spools.all_spools(store)
    async with trio.open_nursery() as nursery:
        server = FakePlugServer(spoolman)
        await nursery.start(server.run)
        url = server.url
        if trouble == "fail_with":
            server.fail_with = 500
        elif trouble == "malformed":
            server.malformed = True
        elif trouble == "huge":
            spoolman.huge = True
        elif trouble == "slow":
            server.delay_s = 5.0
        elif trouble == "down":
            server.unplug()
        sync = sync_for(store, url, deadline_s=0.5)
        async with httpx.AsyncClient() as client:
            with pytest.raises(SpoolmanError, match=words.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
                await sync.sync_once(client, url)
        nursery.cancel_scope.cancel()
    assert spools.all_spools(store) == before  # nothing of the box's changed
    assert "secret" not in words


async def test_failures_show_in_the_status_and_are_retried_with_backoff(store: Database) -> None:
    spoolman = Spoolman()
    async with trio.open_nursery() as nursery:
        server = FakePlugServer(spoolman, fail_with=503)
        await nursery.start(server.run)
        sync = sync_for(store, server.url, backoff_min_s=0.05, poke_delay_s=0.0)
        nursery.start_soon(sync.run)
        with trio.fail_after(60):  # bounds a hang only
            while len(server.requests) < 3:
                await trio.sleep(0.01)
        status = sync.status()
        assert status is not None and status["ok"] is False and status["error"] == "HTTP 503 for the vendors"
        server.fail_with = None  # the server is back: the next retry copies everything
        with trio.fail_after(60):
            while len(spoolman.spools) < 2:
                await trio.sleep(0.01)
        with trio.fail_after(60):
            while not (sync.status() or {}).get("ok"):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
