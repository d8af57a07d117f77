"""LEDs, buzzer and button on gpiozero's MockFactory, timed on trio's fake clock (autojump_clock, no threads)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from gpiozero import PWMLED, Button, PWMOutputDevice
from gpiozero.pins.mock import MockFactory, MockPWMPin

from bambupi.alerts import QuietHours
from bambupi.config import AlertsConfig, PanelConfig
from bambupi.panel import service as panel_service
from bambupi.panel.alarms import Led
from bambupi.panel.outputs import PATTERNS, ButtonWatcher, BuzzerDriver, LedDriver, Recorder
from bambupi.panel.screens import NetworkInfo
from bambupi.panel.service import Panel, system_clock_synced, wifi_from_proc
from bambupi.state_hub import StateHub
from tests.support import printer_config, report


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    made = MockFactory(pin_class=MockPWMPin)
    yield made
    made.reset()


def relative(changes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    start = changes[0][0]
    return [(round(t - start, 3), v) for t, v in changes]


async def test_blink_modes_follow_their_timings(factory: MockFactory, autojump_clock: Any) -> None:
    recorder = Recorder()
    led = PWMLED("GPIO17", pin_factory=factory)
    driver = LedDriver("red", led, recorder)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(driver.run)
        driver.set(Led("blink"))
        await trio.sleep(2.05)
        assert relative(recorder.of("red")) == [(0, 1.0), (0.5, 0.0), (1.0, 1.0), (1.5, 0.0), (2.0, 1.0)]
        # MockPin saw the same order of states.
        assert [s.state for s in factory.pin(17).states][-5:] == [1.0, 0.0, 1.0, 0.0, 1.0]
        recorder.changes.clear()
        driver.set(Led("slow_blink"))
        await trio.sleep(4.1)
        times = [t for t, _ in recorder.of("red")]
        assert {round(b - a, 3) for a, b in itertools.pairwise(times)} == {0.2, 1.8}
        recorder.changes.clear()
        driver.set(Led("fast_blink"))
        await trio.sleep(0.45)
        times = [t for t, _ in recorder.of("red")]
        assert len(times) >= 4 and {round(b - a, 3) for a, b in itertools.pairwise(times)} == {0.1}
        recorder.changes.clear()
        driver.set(Led("on", level=0.2))
        await trio.sleep(10)
        assert recorder.of("red") == [(recorder.of("red")[0][0], 0.2)] and led.value == pytest.approx(0.2)
        recorder.changes.clear()
        driver.set(Led("pulse"))
        await trio.sleep(2.0)
        values = [v for _, v in recorder.of("red")]
        assert min(values) >= 0.05 and max(values) == 1.0 and len(values) >= 19
        nursery.cancel_scope.cancel()


async def test_passive_buzzer_plays_each_pattern_and_can_be_silenced(
    factory: MockFactory, autojump_clock: Any
) -> None:
    recorder = Recorder()
    device = PWMOutputDevice("GPIO18", frequency=2000, pin_factory=factory)
    buzzer = BuzzerDriver(device, recorder, passive=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(buzzer.run)
        buzzer.play("serious")
        await trio.sleep(2)
        tones = relative(recorder.of("buzzer"))
        assert tones == [(0, 1500), (0.15, 0), (0.3, 1500), (0.45, 0), (0.6, 1500), (0.75, 0)]
        assert factory.pin(18).frequency == 1500 and device.value == 0
        recorder.changes.clear()
        buzzer.play("finished")
        await trio.sleep(2)
        assert [v for _, v in recorder.of("buzzer") if v] == [n[0] for n in PATTERNS["finished"]]
        recorder.changes.clear()
        buzzer.play("fatal")
        await trio.sleep(0.6)
        assert buzzer.playing == "fatal"
        buzzer.silence()
        await trio.testing.wait_all_tasks_blocked()
        assert buzzer.playing is None and device.value == 0
        assert recorder.of("buzzer")[-1][1] == 0
        nursery.cancel_scope.cancel()


async def test_button_short_and_long_presses(factory: MockFactory, autojump_clock: Any) -> None:
    presses: list[str] = []
    button = Button("GPIO23", pull_up=True, bounce_time=None, pin_factory=factory)
    watcher = ButtonWatcher(
        button, trio.lowlevel.current_trio_token(), on_short=lambda: presses.append("short"),
        on_long=lambda: presses.append(f"long@{trio.current_time():.1f}"),
    )
    pin = factory.pin(23)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        start = trio.current_time()
        pin.drive_low()
        await trio.sleep(0.2)
        pin.drive_high()
        await trio.sleep(0.1)
        assert presses == ["short"]
        pin.drive_low()
        await trio.sleep(3)
        pin.drive_high()
        await trio.sleep(0.1)
        assert presses == ["short", f"long@{start + 0.3 + 2.0:.1f}"]
        nursery.cancel_scope.cancel()


async def test_panel_fatal_repeats_every_30_s_and_the_button_silences_it(autojump_clock: Any) -> None:
    hub = StateHub([printer_config("p1")])
    panel = Panel(
        hub, PanelConfig(oled="virtual", gpio="virtual"), QuietHours(AlertsConfig()), clock_synced=lambda: True,
        network=lambda url: NetworkInfo("box", "10.0.0.2", url), boot_network_s=5,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        assert panel.current == ("network", None)
        hub.set_connection("p1", "online")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        await trio.sleep(6)
        assert panel.current == ("status", "p1")
        assert panel.status()["leds"]["green"]["mode"] == "on"
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[{"attr": 0x03000100, "code": 0x00010007}]))
        await trio.sleep(95)
        starts = [t for t, p in panel.buzzer.played if p == "fatal"] if panel.buzzer else []
        assert len(starts) == 4 and [round(b - a) for a, b in itertools.pairwise(starts)] == [30, 30, 30]
        assert panel.current == ("hms", "p1")
        factory = panel.factory
        factory.pin(23).drive_low()
        await trio.sleep(0.1)
        factory.pin(23).drive_high()
        await trio.sleep(100)
        assert panel.buzzer is not None and len(panel.buzzer.played) == 4
        assert panel.status()["leds"]["red"]["mode"] == "blink"  # still a live fault, but silenced
        # A short press with nothing to acknowledge pages on.
        shown = panel.current
        factory.pin(23).drive_low()
        factory.pin(23).drive_high()
        await trio.sleep(0.01)
        assert panel.current != shown
        # Long press: the network screen.
        factory.pin(23).drive_low()
        await trio.sleep(2.5)
        factory.pin(23).drive_high()
        await trio.sleep(0.01)
        assert panel.current == ("network", None)
        nursery.cancel_scope.cancel()


async def test_a_silent_code_never_takes_the_screen_but_a_real_one_does(autojump_clock: Any) -> None:
    """A code with nothing to do (here one the official table lists without a text, severity bits "fatal") is listed
    on the HMS page of the rotation but takes no screen, lights no LED and sounds nothing; a real serious one does."""
    hub = StateHub([printer_config("p1")])
    panel = Panel(
        hub, PanelConfig(oled="virtual", gpio="virtual"), QuietHours(AlertsConfig()), clock_synced=lambda: True,
        network=lambda url: NetworkInfo("box", "10.0.0.2", url), boot_network_s=0,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        hub.set_connection("p1", "online")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        await trio.sleep(1)
        shown = panel.current
        assert shown == ("status", "p1")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[{"attr": 0x05000100, "code": 0x0001000A}]))
        await trio.sleep(1)
        assert panel.current == shown  # the rotation goes on; the code waits on its page
        assert panel.status()["leds"]["red"]["mode"] == "off" and panel.buzzer is not None
        assert panel.buzzer.played == []
        hms = [{"attr": 0x05000100, "code": 0x0001000A}, {"attr": 0x07008000, "code": 0x00020001}]
        hub.apply_message("p1", report(gcode_state="IDLE", hms=hms))
        await trio.sleep(1)
        assert panel.current == ("hms", "p1")
        nursery.cancel_scope.cancel()


async def test_screen_dims_then_switches_off_when_idle_and_wakes_on_change(autojump_clock: Any) -> None:
    hub = StateHub([printer_config("p1")])
    config = PanelConfig(oled="virtual", gpio="none", dim_after_s=60, off_after_s=120)
    panel = Panel(
        hub, config, QuietHours(AlertsConfig()), clock_synced=lambda: False, network=lambda url: NetworkInfo()
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        hub.set_connection("p1", "online")
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[]))
        await trio.sleep(30)
        assert panel.display == "on" and panel.screen.contrast == 255
        await trio.sleep(40)
        assert panel.display == "dim" and panel.screen.contrast == config.dim_contrast
        await trio.sleep(60)
        assert panel.display == "off" and panel.screen.on is False
        hub.apply_message("p1", report(gcode_state="IDLE", hms=[{"attr": 0x03000100, "code": 0x00030001}]))
        await trio.sleep(0.01)
        assert panel.display == "on" and panel.screen.on is True
        nursery.cancel_scope.cancel()


def test_clock_sync_check(tmp_path: Path) -> None:
    timesync = tmp_path / "timesync"
    assert system_clock_synced(timesync, wall=lambda: 1.75e9) is True  # no timesyncd: a plausible year
    assert system_clock_synced(timesync, wall=lambda: 0.0) is False  # 1970: never set
    timesync.mkdir()
    assert system_clock_synced(timesync, wall=lambda: 1.75e9) is False  # timesyncd, not yet synchronised
    (timesync / "synchronized").touch()
    assert system_clock_synced(timesync, wall=lambda: 1.75e9) is True


def test_wifi_from_proc() -> None:
    text = (
        "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
        " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
        "wlan0: 0000   54.  -56.  -256        0      0      0      0     12        0\n"
    )
    assert wifi_from_proc(text) == ("wlan0", -56)
    assert wifi_from_proc(text.splitlines(keepends=True)[0]) is None


async def test_panel_shows_why_the_first_boot_rejected_the_setup_file(autojump_clock: Any, tmp_path: Path) -> None:
    note = tmp_path / "setup-errors.txt"
    note.write_text("bambupi.toml:4: system.wifi_country: required with wifi_ssid\n")
    panel = Panel(StateHub([]), PanelConfig(oled="virtual", gpio="virtual"), QuietHours(AlertsConfig()),
                  network=lambda url: NetworkInfo("box", "10.0.0.2", url), setup_errors=note)
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        await trio.sleep(1)
        assert panel.current == ("network", None)
        bottom = panel.image.crop((0, 36, 120, 62)).convert("L")
        assert bottom.histogram()[255] > bottom.width * bottom.height // 2  # the inverse-video note
        note.unlink()  # a later boot applied a fixed file
        await trio.sleep(31)  # the network facts are probed every 30 s
        bottom = panel.image.crop((0, 36, 120, 62)).convert("L")
        assert bottom.histogram()[255] < bottom.width * bottom.height // 4
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("oled", "redraws"), [("virtual", range(4, 4 * 4 + 2)), ("none", range(0, 1))])
async def test_a_flood_of_reports_redraws_a_few_times_a_second_and_never_without_a_screen(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch, oled: str, redraws: range
) -> None:
    rendered: list[float] = []
    real_render = panel_service.render
    monkeypatch.setattr(panel_service, "render", lambda view: rendered.append(trio.current_time()) or real_render(view))
    hub = StateHub([printer_config("p1")])
    panel = Panel(
        hub, PanelConfig(oled=oled, gpio="none"), QuietHours(AlertsConfig()), clock_synced=lambda: True,
        network=lambda url: NetworkInfo("box", "10.0.0.2", url), boot_network_s=0,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(panel.run)
        hub.set_connection("p1", "online")
        await trio.sleep(5)
        rendered.clear()
        for percent in range(100):  # 25 reports a second for 4 s, each a visible change
            hub.apply_message("p1", report(gcode_state="RUNNING", mc_percent=percent))
            await trio.sleep(0.04)
        assert len(rendered) in redraws  # at most MAX_REDRAWS_PER_S a second; none without a screen
        assert panel.printers["p1"]["state"]["percent"] == 99  # the panel still follows every change
        nursery.cancel_scope.cancel()
