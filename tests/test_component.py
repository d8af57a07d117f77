"""The component contract: one failure rule (restart with backoff, shown in /healthz), every config section owned
and applied live or answered "restart", and no part wired to another by setting attributes after start."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bambupi.component import RESTART, Applied, HealthBoard, Supervisor, Web
from bambupi.config import (
    SCHEMA,
    AlertsConfig,
    BridgeConfig,
    CameraConfig,
    Config,
    DiscoveryConfig,
    FacadeConfig,
    FilamentConfig,
    HistoryConfig,
    NotifyConfig,
    PanelConfig,
    PowerConfig,
    PrinterConfig,
    StorageConfig,
    SystemConfig,
    WebConfig,
)
from bambupi.panel.service import Panel
from bambupi.secret import Secret
from bambupi.service import Service

TOKEN = "tk_very-secret-token_42"


class Flaky:
    """A component whose run fails ``failures`` times (before or after it started), then runs."""

    name = "flaky"
    sections: tuple[str, ...] = ()

    def __init__(self, failures: int, *, after_start: bool = False) -> None:
        self.failures = failures
        self.after_start = after_start
        self.starts: list[float] = []

    def add_routes(self, web: Web) -> None:
        pass

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.starts.append(trio.current_time())
        if self.after_start:
            task_status.started()
            await trio.sleep(1)
        if self.failures:
            self.failures -= 1
            raise RuntimeError(f"broken near {TOKEN}")
        if not self.after_start:
            task_status.started()
        await trio.sleep_forever()

    async def apply(self, old: Config, new: Config) -> Applied:
        return RESTART


async def test_a_failing_component_is_restarted_with_backoff_and_logged_once_per_streak(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    flaky = Flaky(5)
    supervisor = Supervisor([flaky], secrets=lambda: [Secret(TOKEN)], backoff_min_s=1, backoff_max_s=4,
                            healthy_after_s=30)
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await supervisor.start(nursery)  # returns at once: the box starts without the part
        health = supervisor.health()["flaky"]
        assert health["ok"] is False and health["state"] == "failed" and health["failures"] == 1
        assert health["error"] == {"type": "RuntimeError", "message": "broken near ********"}
        await trio.sleep(60)
        gaps = [round(b - a) for a, b in zip([start, *flaky.starts], flaky.starts, strict=False)][1:]
        assert gaps == [1, 2, 4, 4, 4]  # doubling, capped
        assert supervisor.health()["flaky"]["state"] == "running"
        assert supervisor.health()["flaky"]["ok"] is True
        assert "failures" not in supervisor.health()["flaky"]  # ran 30 s: the streak is over
        nursery.cancel_scope.cancel()
    failed = [r for r in caplog.records if "flaky failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None  # once, with the exception
    assert [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()] == [
        "flaky recovered (running for 30 s after 5 failures)"
    ]


async def test_a_fresh_failure_after_a_healthy_period_starts_from_the_shortest_wait(autojump_clock: Any) -> None:
    flaky = Flaky(3, after_start=True)  # each run starts, then fails a second later
    supervisor = Supervisor([flaky], backoff_min_s=1, backoff_max_s=60, healthy_after_s=0.5)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery)
        await trio.sleep(30)
        gaps = [round(b - a, 1) for a, b in zip(flaky.starts, flaky.starts[1:], strict=False)]
        assert gaps == [2.0, 2.0, 2.0]  # ran 1 s (> 0.5 s healthy) each time: never 2, 4, 8
        nursery.cancel_scope.cancel()


async def test_cancellation_is_not_a_failure(autojump_clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    flaky = Flaky(0)
    supervisor = Supervisor([flaky])
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery)
        nursery.cancel_scope.cancel()
    assert supervisor.health()["flaky"]["state"] == "running" and len(flaky.starts) == 1
    assert "failed" not in caplog.text


def printer(printer_id: str, **kw: Any) -> PrinterConfig:
    return PrinterConfig(id=printer_id, name=printer_id, model="P1S", host="127.0.0.1", serial="01P00A000000001",
                         access_code=Secret("12345678"), mqtt_port=9, reconnect_max_s=0.5, **kw)


def base_config() -> Config:
    return Config(
        printers=(printer("p1"),), web=WebConfig(host="127.0.0.1", port=0),
        panel=PanelConfig(oled="none", gpio="none"), discovery=DiscoveryConfig(enabled=False),
        notify=(NotifyConfig(name="phone", kind="ntfy", topic="t", url="http://127.0.0.1:9", token=Secret(TOKEN)),),
    )


# One change per section of the schema, and what the settings page must be told. A new section without an entry
# here (or without a component that owns it) fails the test.
CHANGES: dict[str, tuple[dict[str, Any], str]] = {
    "web": ({"web": WebConfig(host="127.0.0.1", port=1)}, "restart"),
    "printer": ({"printers": (printer("p1"), printer("p2"))}, "applied"),
    "panel": ({"panel": PanelConfig(oled="none", gpio="none", rotate_s=3)}, "applied"),
    "alerts": ({"alerts": AlertsConfig(quiet_hours=((22, 0), (7, 0)))}, "applied"),
    "storage": ({"storage": StorageConfig(path=Path("/elsewhere/bambupi.sqlite3"))}, "restart"),
    "camera": ({"camera": CameraConfig(linger_s=3)}, "restart"),
    "notify": ({"notify": ()}, "applied"),
    "discovery": ({"discovery": DiscoveryConfig(enabled=True)}, "restart"),
    "system": ({"system": SystemConfig(hostname="garage")}, "restart"),
    "power": ({"power": PowerConfig(sample_interval_s=5)}, "applied"),
    "history": ({"history": HistoryConfig(fetch_timeout_s=30)}, "applied"),
    "filament": ({"filament": FilamentConfig(low_g=50)}, "applied"),
    "bridge": ({"bridge": BridgeConfig(enabled=True, host="127.0.0.1", port=1)}, "applied"),
    "facade": ({"facade": FacadeConfig(enabled=True, host="127.0.0.1", mqtt_port=0, camera_port=0,
                                       access_code=Secret("fac4de01"))}, "applied"),
}


async def test_every_section_is_applied_live_or_answers_restart(tmp_path: Path) -> None:
    assert set(CHANGES) == set(SCHEMA)
    async with trio.open_nursery() as nursery:
        service = Service(base_config(), storage_folder=tmp_path)
        await nursery.start(service.run)
        owned = {s for component in service.parts.ordered() for s in component.sections}
        assert owned == set(SCHEMA), "every section has a component that applies it"
        for section, (change, expected) in CHANGES.items():
            old = service.config
            new = dataclasses.replace(old, **change)
            assert getattr(new, SCHEMA[section].attr) != getattr(old, SCHEMA[section].attr), section
            outcome = await service.reconfigure(new)
            if expected == "restart":
                assert outcome == {"applied": [], "restart_required": [section]}, section
            else:
                assert outcome["applied"] and outcome["restart_required"] == [], (section, outcome)
            await service.reconfigure(old)  # back, for the next section's change alone
        # The live ones took: a printer joined every part, the sampling interval changed.
        await service.reconfigure(dataclasses.replace(service.config, **CHANGES["printer"][0]))
        assert "p2" in service.parts.links.links and service.parts.camera.frames.has("p2")
        await service.reconfigure(dataclasses.replace(service.config, **CHANGES["power"][0]))
        assert service.parts.power.service.settings.sample_interval_s == 5
        nursery.cancel_scope.cancel()


def cross_references(service: Service) -> set[tuple[str, str, int]]:
    """(object, attribute, id of what it refers to) for every attribute of a part that points at another part or at
    a method of one."""
    parts = service.parts
    owners: dict[int, str] = {}
    for component in parts.ordered():
        owners[id(component)] = component.name
        for inner in vars(component).values():
            if type(inner).__module__.startswith("bambupi.") and not isinstance(inner, type):
                owners.setdefault(id(inner), component.name)
    found = set()
    for holder in [*parts.ordered(), parts.notify.notifier, parts.power.service, parts.camera.frames]:
        for attribute, value in vars(holder).items():
            target = getattr(value, "__self__", value)
            owner = owners.get(id(target))
            if owner is not None and owner != owners.get(id(holder)):
                found.add((type(holder).__name__, attribute, id(target)))
    return found


async def test_parts_are_wired_through_their_constructors_only(tmp_path: Path, monkeypatch: Any) -> None:
    built: list[set[tuple[str, str, int]]] = []
    build = Service._build

    def build_and_look(self: Service, *args: Any) -> Any:
        parts = build(self, *args)
        self.parts = parts
        built.append(cross_references(self))
        return parts

    monkeypatch.setattr(Service, "_build", build_and_look)
    async with trio.open_nursery() as nursery:
        service = Service(base_config(), storage_folder=tmp_path)
        running = await nursery.start(service.run)
        assert cross_references(service) == built[0]  # nothing attached after start
        assert {(holder, attribute) for holder, attribute, _ in built[0]} >= {
            ("Notifier", "quiet"), ("Notifier", "snapshot"), ("Notifier", "job_energy"),
            ("PanelComponent", "_quiet_hours"), ("PanelComponent", "_auto_off"), ("PanelComponent", "_url"),
            ("PanelComponent", "_filament"),
        }
        panel = running.panel
        assert panel is not None and panel.quiet_hours is running.quiet_hours and panel.auto_off is running.power
        assert panel.url() == running.url and panel.filament is running.inventory
        nursery.cancel_scope.cancel()


async def test_a_crashing_panel_is_restarted_and_shown_in_healthz_while_the_rest_serves(
    tmp_path: Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broken = [False]
    refresh = Panel._refresh

    def refresh_or_break(self: Panel) -> None:
        if broken[0]:
            raise RuntimeError(f"a bug in the refresh near {TOKEN}")
        refresh(self)

    monkeypatch.setattr(Panel, "_refresh", refresh_or_break)
    async with trio.open_nursery() as nursery:
        running = await nursery.start(Service(base_config(), storage_folder=tmp_path).run)
        async with httpx.AsyncClient(base_url=running.url) as client:

            async def health() -> dict[str, Any]:
                r = await client.get("/healthz")
                assert r.status_code == 200 and TOKEN not in r.text
                body: dict[str, Any] = r.json()
                return body

            assert (await health())["components"]["panel"] == {"ok": True, "state": "running"}
            broken[0] = True  # the next refresh (within a second) raises
            with trio.fail_after(30):
                while (await health())["components"]["panel"].get("failures", 0) < 2:
                    await trio.sleep(0.05)
            body = await health()
            panel = body["components"]["panel"]
            assert body["status"] == "degraded" and panel["ok"] is False
            assert panel["state"] in ("failed", "restarting")
            assert panel["error"]["type"] == "RuntimeError" and "a bug in the refresh" in panel["error"]["message"]
            assert body["components"]["notify"]["state"] == "running"  # the rest keeps running
            page = await client.get("/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            assert len([r for r in caplog.records if "panel failed" in r.getMessage()]) == 1

            broken[0] = False
            with trio.fail_after(30):
                while (await health())["components"]["panel"]["state"] != "running":
                    await trio.sleep(0.05)
            body = await health()
            assert body["components"]["panel"]["ok"] is True and running.panel is not None
            assert (await client.get("/api/panel")).status_code == 200
        nursery.cancel_scope.cancel()


async def test_a_component_that_must_start_ends_the_service_when_it_cannot(tmp_path: Path) -> None:
    async with trio.open_nursery() as taken:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        config = dataclasses.replace(base_config(), web=WebConfig(host="127.0.0.1", port=port))
        with pytest.raises(BaseException) as caught:  # an OSError, inside exception groups
            async with trio.open_nursery() as nursery:
                await nursery.start(Service(config, storage_folder=tmp_path).run)
        assert caught.group_contains(OSError) if isinstance(caught.value, BaseExceptionGroup) else isinstance(
            caught.value, OSError
        )
        await listener.aclose()
        taken.cancel_scope.cancel()


async def test_the_health_board_lists_what_is_failing_and_changes_only_with_it(autojump_clock: Any) -> None:
    steady, flaky = Flaky(0), Flaky(1)
    steady.name = "steady"
    board = HealthBoard()
    supervisor = Supervisor([steady, flaky], secrets=lambda: [Secret(TOKEN)], backoff_min_s=2, board=board)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery)
        failed = {"name": "flaky", "state": "failed", "error": "RuntimeError", "failures": 1, "retry_in_s": 2.0}
        assert board.failing() == [failed]  # the running part is not listed; the message (and its token) is not
        assert supervisor.health() == board.to_json()
        version = board.version
        await trio.sleep(1.5)
        assert board.failing() == [{**failed, "retry_in_s": 0.5}] and board.version == version  # a countdown only
        await board.wait_for_change(version)
        assert board.failing() == [{"name": "flaky", "state": "restarting", "error": "RuntimeError", "failures": 1}]
        await board.wait_for_change(board.version)
        assert board.failing() == [] and supervisor.health()["flaky"]["state"] == "running"
        version = board.version
        await trio.sleep(200)  # the streak ends ("recovered"): nothing the page shows changed
        assert board.version == version
        nursery.cancel_scope.cancel()
