"""The spool inventory on a real SQLite file: RFID spools from real reports, moves, one spool per tag (also when two
writers race), each job's grams taken once, low once per crossing and re-armed by a refill."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from bambupi.database import Database, DatabaseError
from bambupi.filament import spools
from bambupi.filament.inventory import Inventory, sightings
from bambupi.filament.spools import Location, NewSpool
from bambupi.printer.events import Event
from bambupi.printer.state import apply_message, initial_state
from tests.capture_corpus import capture

P2S_TAG_0 = "C234B32CD1C14E0587B0CF6BF8753D0F"  # AMS 0 slot 0 of the real P2S capture: PLA, 1000 g at 41 %


class Hub:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish_event(self, event: Event) -> None:
        self.events.append(event)

    def has(self, printer_id: str) -> bool:
        return printer_id == "p2s"

    def printer(self, printer_id: str) -> dict[str, Any]:
        return {"name": "Workshop", "state": {}}


def p2s_state() -> dict[str, Any]:
    item = capture("p2s-ams")
    return apply_message(initial_state(), item.messages[0], model=item.model).state


@pytest.fixture
def store(tmp_path: Path) -> Database:
    return Database(tmp_path / "bambupi.sqlite3")


def inventory(store: Database, hub: Hub, low_g: float = 100.0) -> Inventory:
    return Inventory(hub, store, low_g=lambda: low_g, clock=lambda: 1_700_000_000.0)


async def test_rfid_spools_appear_from_a_real_report_with_their_remaining_grams(store: Database) -> None:
    hub = Hub()
    await inventory(store, hub).observe("p2s", p2s_state())
    rows = spools.all_spools(store)
    assert [(r["rfid"], r["material"], r["colour"], r["brand"], r["net_g"], r["remaining_g"], r["ams"], r["tray"])
            for r in rows] == [
        (P2S_TAG_0, "PLA", "#FFFFFF", "Bambu Lab", 1000.0, 410.0, 0, 0),
        ("15A8808C6AC140F2B84FBAE990AD9E43", "PLA", "#000000", "Bambu Lab", 1000.0, 390.0, 0, 1),
    ]  # fmt: skip  # the two untagged spools are not made up
    assert hub.events == []


async def test_a_spool_seen_again_or_moved_is_the_same_spool(store: Database) -> None:
    hub = Hub()
    inv = inventory(store, hub)
    state = p2s_state()
    await inv.observe("p2s", state)
    first = spools.all_spools(store)
    inv.forget("p2s")
    await inv.observe("p2s", state)
    assert spools.all_spools(store) == first
    # Swap the two tagged spools between slots 0 and 1.
    trays = state["ams"]["units"]["0"]["trays"]
    swapped = {**state, "ams": {"units": {"0": {**state["ams"]["units"]["0"],
                                                "trays": {**trays, "0": trays["1"], "1": trays["0"]}}}}}  # fmt: skip
    await inv.observe("p2s", swapped)
    by_tag = {r["rfid"]: (r["id"], r["tray"]) for r in spools.all_spools(store)}
    assert by_tag == {P2S_TAG_0: (first[0]["id"], 1), first[1]["rfid"]: (first[1]["id"], 0)}
    # Taken out: the slot empties, the spool goes to the shelf with what it had left.
    emptied = {**state, "ams": {"units": {"0": {**state["ams"]["units"]["0"],
                                                "trays": {**trays, "0": {"empty": True}, "1": {"empty": True}}}}}}
    await inv.observe("p2s", emptied)
    assert {r["location"] for r in spools.all_spools(store)} == {"shelf"}
    assert len(spools.all_spools(store)) == 2


def test_two_writers_racing_on_one_tag_make_one_spool(tmp_path: Path) -> None:
    """Two connections (as two processes would) see the same new tag at once: one row, whoever wins."""
    path = tmp_path / "bambupi.sqlite3"
    seen = sightings("p2s", p2s_state())
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer() -> None:
        db = Database(path)
        try:
            barrier.wait()
            spools.observe(db, seen, now=1.0, low_g=100)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    rows = spools.all_spools(Database(path))
    assert sorted(r["rfid"] for r in rows) == sorted([P2S_TAG_0, "15A8808C6AC140F2B84FBAE990AD9E43"])


async def test_a_job_takes_its_grams_once_and_a_low_spool_is_told_once(store: Database) -> None:
    hub = Hub()
    inv = inventory(store, hub, low_g=385.0)
    await inv.observe("p2s", p2s_state())  # slot 0: 410 g, slot 1: 390 g
    slot0 = {"ams": 0, "tray": 0}
    usage = {1: (12.5, slot0), 2: (7.5, slot0), 3: (3.0, None)}  # two filaments from one spool, one unknown tray
    await inv.job_ended(7, "p2s", usage)
    await inv.job_ended(7, "p2s", usage)  # the recorder calls again (a restart, a late file): no second subtraction
    spool = spools.at(store, Location("ams", "p2s", 0, 0))
    assert spool is not None and spool["remaining_g"] == 390.0
    assert hub.events == []  # 390 is not below 385
    await inv.job_ended(8, "p2s", {1: (5.5, slot0)})
    assert [e["kind"] for e in hub.events] == ["filament_low"]
    low = hub.events[0]
    assert (low["printer"], low["spool"], low["material"], low["colour"], low["remaining_g"]) == (
        "p2s", spool["id"], "PLA", "#FFFFFF", 384.5)
    assert low["message"] == "PLA #FFFFFF low: 384 g left (Workshop: AMS 1 slot 1)"
    await inv.job_ended(9, "p2s", {1: (10.0, slot0)})
    assert len(hub.events) == 1  # still low: not told again
    # A refill (the owner sets the weight above the threshold) re-arms it; the next crossing is told again.
    spools.edit(store, spool["id"], {"remaining_g": 1000.0}, now=2.0, low_g=385.0)
    await inv.job_ended(10, "p2s", {1: (700.0, slot0)})
    assert [e["remaining_g"] for e in hub.events] == [384.5, 300.0]


async def test_a_tagged_spool_that_arrives_low_is_told_once(store: Database) -> None:
    item = capture("h2d-two-ams")  # AMS 0 slot 0: a 250 g spool at 1 %
    state = apply_message(initial_state(), item.messages[0], model=item.model).state
    hub = Hub()
    inv = inventory(store, hub)
    await inv.observe("p2s", state)
    inv.forget("p2s")
    await inv.observe("p2s", state)
    assert [(e["kind"], e["remaining_g"]) for e in hub.events] == [("filament_low", 2.5)]


async def test_an_owner_spool_assigned_to_a_slot_takes_the_jobs_grams(store: Database) -> None:
    hub = Hub()
    inv = inventory(store, hub)
    await inv.observe("p2s", p2s_state())
    mine = spools.add(store, NewSpool("PETG", "#FFFFFF", "Generic", 1000.0, 800.0), now=1.0, low_g=100)
    spools.place(store, mine["id"], Location("ams", "p2s", 0, 3), now=2.0)
    assert await inv.spool_at("p2s", {"ams": 0, "tray": 3}) == mine["id"]
    inv.forget("p2s")
    await inv.observe("p2s", p2s_state())  # slot 3 holds an untagged spool: the owner's assignment stays
    await inv.job_ended(11, "p2s", {1: (12.25, {"ams": 0, "tray": 3})})
    row = spools.one(store, mine["id"])
    assert row is not None and row["remaining_g"] == 787.75 and row["location"] == "ams"
    # Another spool put in that slot sends this one to the shelf.
    other = spools.add(store, NewSpool("PETG"), now=3.0, low_g=100)
    spools.place(store, other["id"], Location("ams", "p2s", 0, 3), now=4.0)
    row = spools.one(store, mine["id"])
    assert row is not None and row["location"] == "shelf"


async def test_a_deleted_tagged_spool_does_not_come_back(store: Database) -> None:
    hub = Hub()
    inv = inventory(store, hub)
    await inv.observe("p2s", p2s_state())
    tagged = spools.at(store, Location("ams", "p2s", 0, 0))
    assert tagged is not None and spools.delete(store, tagged["id"], now=5.0)
    inv.forget("p2s")
    await inv.observe("p2s", p2s_state())
    assert [r["rfid"] for r in spools.all_spools(store)] == ["15A8808C6AC140F2B84FBAE990AD9E43"]


async def test_a_database_that_cannot_be_opened_loses_no_sighting(tmp_path: Path) -> None:
    """The sighting is not marked seen when it could not be written, so the next report writes it."""
    path = tmp_path / "bambupi.sqlite3"
    path.mkdir()  # not a file: SQLite cannot open it
    store = Database(path)
    hub = Hub()
    inv = inventory(store, hub)
    with pytest.raises(DatabaseError):
        await inv.observe("p2s", p2s_state())
    path.rmdir()
    await inv.observe("p2s", p2s_state())
    assert len(spools.all_spools(store)) == 2


async def wait_low(inv: Inventory, expected: list[tuple[int, float]]) -> None:
    """Until the low list (spool, grams) is ``expected``; the bound only stops a hang."""
    with trio.fail_after(60):
        while [(s.spool, s.remaining_g) for s in inv.low_spools()] != expected:
            await trio.sleep(0.01)


async def test_the_low_list_follows_jobs_refills_and_moves_and_leaves_the_shelf_out(store: Database) -> None:
    """What the OLED reads (Inventory.low_spools): loaded spools below the threshold, emptiest first, re-read after
    a job takes grams, after the owner's change (spools_changed, as the routes call it) and a new threshold."""
    hub = Hub()
    threshold = [385.0]
    inv = Inventory(hub, store, low_g=lambda: threshold[0], clock=lambda: 1_700_000_000.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(inv.follow_low)
        await inv.observe("p2s", p2s_state())  # slot 0: 410 g, slot 1: 390 g, neither below 385
        shelf = spools.add(store, NewSpool("PETG", "", "", 1000.0, 20.0), now=1.0, low_g=385.0)
        inv.spools_changed()
        await wait_low(inv, [])  # the nearly empty spool on the shelf runs out in no print
        slot0 = spools.at(store, Location("ams", "p2s", 0, 0))
        assert slot0 is not None
        await inv.job_ended(8, "p2s", {1: (30.0, {"ams": 0, "tray": 0})})
        await wait_low(inv, [(slot0["id"], 380.0)])
        (low,) = inv.low_spools()
        assert (low.printer, low.material, low.colour, low.where) == ("p2s", "PLA", "#FFFFFF", "AMS 1 slot 1")
        spools.place(store, shelf["id"], Location("external", "p2s", None, 255), now=2.0)
        inv.spools_changed()
        await wait_low(inv, [(shelf["id"], 20.0), (slot0["id"], 380.0)])
        spools.edit(store, slot0["id"], {"remaining_g": 1000.0}, now=3.0, low_g=385.0)  # refilled
        inv.spools_changed()
        await wait_low(inv, [(shelf["id"], 20.0)])
        threshold[0] = 10.0
        inv.spools_changed()
        await wait_low(inv, [])
        nursery.cancel_scope.cancel()
