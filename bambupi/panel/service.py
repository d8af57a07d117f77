"""The panel service: follows the hub, applies the alarm rules, drives LEDs, buzzer and OLED, handles the button.

Everything here runs in trio's thread; the only crossings are gpiozero's button callbacks (handed in through the
trio token) and real I2C writes (in a worker thread, see hardware.Screen). The web API reads :meth:`Panel.status` and
:meth:`Panel.image` through ``trio.from_thread.run_sync``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import tzinfo
from pathlib import Path
from typing import Any, Final, Protocol, get_args

import trio
from PIL import Image

from bambupi.alerts import system_clock_synced
from bambupi.config import PanelConfig
from bambupi.filament.inventory import LowSpool
from bambupi.lan import lan_address
from bambupi.panel import alarms
from bambupi.panel.alarms import AttentionScreen, DoorRules
from bambupi.panel.brightness import Lighting, PlugStates
from bambupi.panel.hardware import DEV, Hardware, Screen, choose_hardware, open_oled
from bambupi.panel.light_sensor import SensorReader
from bambupi.panel.notices import render_notice
from bambupi.panel.outputs import ButtonWatcher, BuzzerDriver, LedDriver, Recorder
from bambupi.panel.screens import (
    HEIGHT,
    MARQUEE_STEP_S,
    SHIFTS,
    WIDTH,
    NetworkInfo,
    ScreenName,
    View,
    ams_units,
    changes_within,
    hms_silent,
    hms_sorted,
    render,
)
from bambupi.printer.phase import IN_JOB, WORKING
from bambupi.state_hub import EventQueue, PrinterObject, StateHub, Subscription

log = logging.getLogger("bambupi.panel")

BOOT_NETWORK_S: Final = 10.0  # the network screen shows this long at start, so a user can find the web page
LONG_PRESS_NETWORK_S: Final = 30.0
SHIFT_EVERY_S: Final = 60.0
# At most this many redraws a second: a printer reporting 25 times a second (or a farm of them) must not have the
# OLED re-rendered for each report; what changed meanwhile is in the next picture.
MAX_REDRAWS_PER_S: Final = 4.0
TAKEOVER: Final = alarms.TAKEOVER  # HMS severities that take the screen
DOOR_LIGHT_ORIGIN: Final = "the box (door light)"  # how the command log names the door light's commands
DOOR_LIGHT_DEADLINE_S: Final = 30.0  # one light command, every node and reply included


def wifi_from_proc(text: str) -> tuple[str, int] | None:
    """(interface, signal dBm) from /proc/net/wireless, or None when there is no wireless interface."""
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) >= 3:
            try:
                return name.strip(), int(float(fields[2]))
            except ValueError:
                continue
    return None


def probe_network(url: str | None, proc_wireless: Path = Path("/proc/net/wireless")) -> NetworkInfo:
    ip = lan_address()
    try:
        wifi = wifi_from_proc(proc_wireless.read_text())
    except OSError:
        wifi = None
    return NetworkInfo(
        hostname=socket.gethostname(), ip=ip, url=url, wifi_ssid=wifi[0] if wifi else None,
        wifi_dbm=wifi[1] if wifi else None,
    )


def read_setup_error(path: Path | None) -> str | None:
    """The first problem the image's first boot found in bambupi.toml (see ``SETUP_ERRORS_FILE_NAME``), if any."""
    if path is None:
        return None
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None  # no file: nothing was rejected
    problems = [line.strip() for line in lines if line.strip()]
    return problems[0] if problems else "see bambupi-errors.txt"


class Quiet(Protocol):
    """The box's quiet hours (``alerts.QuietHours``): the buzzer keeps still inside them; clock times use ``tz``."""

    tz: tzinfo | None

    def quiet(self) -> bool: ...


class AutoOffCountdowns(Protocol):
    """The smart plugs' pending auto-off (the power service): shown on the screen, cancelled with the button."""

    def auto_off_warnings(self) -> dict[str, float]: ...

    def cancel_auto_off(self, printer_id: str) -> bool: ...


class NoAutoOff:
    """A box without a power service: no countdown is ever pending."""

    def auto_off_warnings(self) -> dict[str, float]:
        return {}

    def cancel_auto_off(self, printer_id: str) -> bool:
        return False


class LowFilament(Protocol):
    """The filament inventory (bambupi.filament.inventory.Inventory): the spools in a printer below the threshold,
    shown on that printer's own screen while no job runs on it."""

    def low_spools(self) -> Sequence[LowSpool]: ...


class NoFilament:
    """A box without an inventory: no spool is ever low."""

    def low_spools(self) -> Sequence[LowSpool]:
        return ()


class Commands(Protocol):
    """The printers' controls (bambupi.printer.commands.Controls): the door light goes through the same checks and
    the same command log as the page's light button."""

    async def send(self, printer_id: str, name: str, params: Mapping[str, Any], *, origin: str = ...) -> object: ...


class NoCommands:
    """A box whose panel may not send commands: the door light never switches."""

    async def send(self, printer_id: str, name: str, params: Mapping[str, Any], *, origin: str = "") -> object:
        raise RuntimeError("this panel sends no commands")


Shown = tuple[ScreenName | AttentionScreen, str | None]


class Panel:
    def __init__(
        self,
        hub: StateHub,
        config: PanelConfig,
        quiet_hours: Quiet,
        *,
        auto_off: AutoOffCountdowns | None = None,
        filament: LowFilament | None = None,
        commands: Commands | None = None,
        url: Callable[[], str | None] = lambda: None,
        clock_synced: Callable[[], bool] = system_clock_synced,
        wall: Callable[[], float] = time.time,
        network: Callable[[str | None], NetworkInfo] = probe_network,
        dev: Path = DEV,
        boot_network_s: float = BOOT_NETWORK_S,
        setup_errors: Path | None = None,
        plugs: PlugStates | None = None,
        light_sensor: SensorReader | None = None,
    ) -> None:
        self.hub = hub
        self.config = config
        self.quiet_hours = quiet_hours
        self.auto_off = auto_off if auto_off is not None else NoAutoOff()
        self.filament = filament if filament is not None else NoFilament()
        self.commands = commands if commands is not None else NoCommands()
        self.url = url  # the web page's address, once the front door listens
        self.clock_synced = clock_synced
        self.wall = wall
        self.network_probe = network
        self.dev = dev
        self.boot_network_s = boot_network_s
        self.setup_errors = setup_errors
        # The room's light (an optional BH1750 on the OLED's bus) or the quiet hours set the brightness; printers
        # that are off put the OLED and LEDs to sleep (brightness.py).
        self.light_sensor = light_sensor if light_sensor is not None else SensorReader(config, dev=dev)
        self.lighting = Lighting(config, plugs=plugs, sensor=self.light_sensor, night=quiet_hours.quiet)
        self.hardware = Hardware("none", "none")
        self.factory: Any = None  # gpiozero MockFactory when gpio = virtual (tests drive its pins)
        self.recorder = Recorder()
        self.leds: dict[alarms.LedName, LedDriver] = {}
        self.buzzer: BuzzerDriver | None = None
        self.button: ButtonWatcher | None = None
        self.screen = Screen(None, threaded=False)
        self.printers: Mapping[str, PrinterObject] = {}
        self.alarm_state = alarms.AlarmState()
        self.current: Shown = ("network", None)
        self.image: Image.Image = Image.new("1", (WIDTH, HEIGHT), 0)
        self.display = "on"  # on | dim | off
        self._network = NetworkInfo()
        self._network_at = float("-inf")
        self._started = 0.0
        self._current_since = 0.0  # when the current screen came up (the HMS screen turns its pages from then)
        self._network_until = 0.0
        self._asked_network_until = 0.0  # a long press asked for the network screen: it shows over a print's end
        self._nursery: trio.Nursery | None = None  # for the door light's commands
        self._page = 0
        self._page_since = 0.0
        self._activity = 0.0
        self._wake = trio.Event()
        self._moving = False  # the picture changes by itself within MARQUEE_STEP_S (a long name scrolls)
        self._devices: list[Any] = []

    # -- reading (web API, in trio's thread) -------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        led_states = {name: driver.led for name, driver in self.leds.items()} or self._led_modes()
        buzzer = self.buzzer
        return {
            "leds": {name: led.to_json() for name, led in led_states.items()},
            "buzzer": {
                "kind": self.config.buzzer if buzzer is not None else "none",
                "active": buzzer is not None and buzzer.playing is not None,
                "pattern": buzzer.playing if buzzer is not None else None,
                "last": buzzer.played[-1][1] if buzzer is not None and buzzer.played else None,
                "count": len(buzzer.played) if buzzer is not None else 0,
            },
            "screen": self.current[0],
            "printer": self.current[1],
            "display": self.display,
            "brightness": self.lighting.light.to_json(),
            "light_sensor": self.light_sensor.health(),
            "pending": alarms.pending(self.alarm_state, self.printers, trio.current_time()),
            "door_light": sorted(self.alarm_state.light_until),  # printers whose chamber light the box switched on
            "hardware": {"oled": self.hardware.oled, "gpio": self.hardware.gpio},
        }

    # -- running -----------------------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[Panel] = trio.TASK_STATUS_IGNORED) -> None:
        self.hardware = choose_hardware(self.config, self.dev)
        now = trio.current_time()
        self._started = self._activity = self._page_since = self._current_since = now
        self._network_until = now + self.boot_network_s
        try:
            async with self.hub.events("panel") as queue, self.hub.subscribe() as updates, \
                    trio.open_nursery() as nursery:
                self._nursery = nursery
                self._open_gpio(trio.lowlevel.current_trio_token())
                self._open_oled()
                nursery.start_soon(self.light_sensor.run)
                for driver in self.leds.values():
                    nursery.start_soon(driver.run)
                if self.buzzer is not None:
                    nursery.start_soon(self.buzzer.run)
                if self.button is not None:
                    nursery.start_soon(self.button.run)
                self.printers = self.hub.snapshot()
                self._refresh()
                await self._draw()
                nursery.start_soon(self._follow_state, updates)
                nursery.start_soon(self._follow_events, queue)
                nursery.start_soon(self._tick)
                task_status.started(self)
        finally:
            for device in self._devices:
                device.close()

    def _open_gpio(self, token: trio.lowlevel.TrioToken) -> None:
        if self.hardware.gpio == "none":
            return
        try:
            from gpiozero import LED, PWMLED, Button, Buzzer, PWMOutputDevice

            if self.hardware.gpio == "virtual":
                from gpiozero.pins.mock import MockFactory, MockPWMPin

                self.factory = MockFactory(pin_class=MockPWMPin)
            config = self.config
            pins = {"green": config.led_green, "amber": config.led_amber, "red": config.led_red}
            for name, pin in pins.items():
                try:
                    device = PWMLED(pin, pin_factory=self.factory)
                except Exception:  # a pin without PWM support: plain on/off
                    device = LED(pin, pin_factory=self.factory)
                self._devices.append(device)
                self.leds[name] = LedDriver(name, self.lighting.wrap(device), self.recorder)  # type: ignore[index]
            if config.buzzer != "none":
                passive = config.buzzer == "passive"
                buzzer = (
                    PWMOutputDevice(config.buzzer_pin, frequency=2000, pin_factory=self.factory)
                    if passive else Buzzer(config.buzzer_pin, pin_factory=self.factory)
                )
                self._devices.append(buzzer)
                self.buzzer = BuzzerDriver(buzzer, self.recorder, passive=passive)
            button = Button(config.button, pull_up=True, bounce_time=None, pin_factory=self.factory)
            self._devices.append(button)
            self.button = ButtonWatcher(button, token, on_short=self.short_press, on_long=self.long_press)
        except Exception as exc:  # gpiozero raises many kinds: no pin library, pin busy, bad name...
            log.warning("panel: GPIO unavailable (%s: %s); running without LEDs, buzzer and button",
                        type(exc).__name__, exc)
            for device in self._devices:
                device.close()
            self._devices, self.leds, self.buzzer, self.button = [], {}, None, None
            self.hardware = Hardware(self.hardware.oled, "none")

    def _open_oled(self) -> None:
        try:
            device = open_oled(self.hardware.oled, self.config)
        except Exception as exc:  # luma: DeviceNotFoundError, OSError from smbus, ImportError...
            log.warning("panel: OLED unavailable (%s: %s); running without a screen", type(exc).__name__, exc)
            device = None
            self.hardware = Hardware("none", self.hardware.gpio)
        self.screen = Screen(device, threaded=self.hardware.oled in ("ssd1306", "sh1106"))

    async def _follow_state(self, updates: Subscription) -> None:
        while True:
            snapshot = await updates.next()
            if _noticeable(self.printers, snapshot):
                self._activity = trio.current_time()
            self.printers = snapshot
            self._poke()

    async def _follow_events(self, queue: EventQueue) -> None:
        while True:
            event = await queue.get()
            self.on_event(event)

    async def _tick(self) -> None:
        while True:
            drawn_at = trio.current_time()
            self._refresh()
            await self._draw()
            # A scrolling name steps faster than once a second; a still picture is refreshed once a second.
            with trio.move_on_after(MARQUEE_STEP_S if self._moving else 1.0):
                await self._wake.wait()
            # Whatever pokes come meanwhile are all in the next refresh.
            await trio.sleep_until(drawn_at + 1 / MAX_REDRAWS_PER_S)
            self._wake = trio.Event()

    def _poke(self) -> None:
        self._wake.set()

    # -- rules ---------------------------------------------------------------------------------------------------
    def quiet(self) -> bool:
        return self.quiet_hours.quiet()

    def on_event(self, event: Mapping[str, Any]) -> None:
        now = trio.current_time()
        # The state the event came from, before the next refresh judges it: with an older snapshot, observe would
        # see no such HMS code yet and drop the alarm it just raised (events and state changes wake their readers
        # in either order).
        self.printers = self.hub.snapshot()
        self.alarm_state, sound = alarms.on_event(self.alarm_state, event, now, quiet=self.quiet())
        if sound is not None and self.buzzer is not None:
            self.buzzer.play(sound)
        self._activity = now
        # Any printer event wakes a sleeping box, but a printer falling silent: after its plug went off that is the
        # expected end, not activity (the box lit up for a minute in the dark, a minute after it). A box awake sees
        # the loss on its LEDs anyway; asleep, every printer already counts as off.
        if event.get("kind") != "connection_lost":
            self.lighting.wake(now)
        self._poke()

    def short_press(self) -> None:
        """Acknowledge the current alarm; with nothing to acknowledge, show the next screen."""
        now = trio.current_time()
        self._activity = now
        self.lighting.wake(now)
        warned = list(self.auto_off.auto_off_warnings())
        if warned:
            # The countdown is the most urgent thing a press can mean: the printer is about to lose power.
            for printer_id in warned:
                self.auto_off.cancel_auto_off(printer_id)
            log.info("panel: auto-off cancelled with the button (%s)", ", ".join(warned))
        elif alarms.pending(self.alarm_state, self.printers, now):
            # The printer shown is the one acknowledged (alarms.attention puts the worst first); on a screen of no
            # printer's (the network screen), every printer's.
            shown = self.current[1] if alarms.pending(self.alarm_state, self.printers, now, self.current[1]) else None
            self.alarm_state = alarms.acknowledge(self.alarm_state, self.printers, shown)
            if self.buzzer is not None and not self.alarm_state.fatal_due:
                self.buzzer.silence()
            log.info("panel: alarm acknowledged with the button (%s)", shown or "every printer")
        elif self.display != "off":
            self._network_until = self._asked_network_until = 0.0
            self._page = self._page_index(now) + 1
            self._page_since = now
        self._poke()

    def press(self) -> dict[str, Any]:
        """A short press from the page (``POST /api/panel/button``): what the panel shows after it."""
        self.short_press()
        self._refresh()  # the LEDs and the screen answer at once, as the real button's next refresh would
        return self.status()

    def long_press(self) -> None:
        """Wake the screen on the network screen (so anyone can find the web page)."""
        now = trio.current_time()
        self._activity = now
        self.lighting.wake(now)
        self._network_until = self._asked_network_until = now + LONG_PRESS_NETWORK_S
        self._poke()

    def _led_modes(self) -> dict[alarms.LedName, alarms.Led]:
        return alarms.leds(
            self.printers, self.alarm_state, trio.current_time(), grace_s=self.config.offline_grace_s,
            hold_s=self.config.finished_hold_s,
            plugs_off=frozenset(pid for pid in self.printers if self.lighting.plugs.plug_off(pid)),
        )

    def _pages(self) -> list[tuple[ScreenName, str | None]]:
        pages: list[tuple[ScreenName, str | None]] = []
        low = {spool.printer for spool in self.filament.low_spools()}
        for pid, printer in self.printers.items():
            pages += [("status", pid), ("temps", pid)]
            if ams_units(printer):
                pages.append(("ams", pid))
            if hms_sorted(printer):
                pages.append(("hms", pid))
            if pid in low and printer["phase"] not in IN_JOB:
                pages.append(("filament", pid))  # a print under way needs its own pages; the spool waits for the end
        return [*pages, ("network", None)]

    def _low_spools(self, printer_id: str | None) -> tuple[LowSpool, ...]:
        return tuple(spool for spool in self.filament.low_spools() if spool.printer == printer_id)

    def _choose(self, now: float) -> Shown:
        # The printer that needs attention first (alarms.attention): an HMS screen before the auto-off countdown,
        # which comes before the network screen someone asked for (a long press), then a print's end or a notice,
        # then the network screen of the first seconds.
        first = alarms.attention(self.alarm_state, self.printers)
        if first is not None and first[1] == "hms":
            return "hms", first[0]
        warned = sorted(self.auto_off.auto_off_warnings())
        if warned:
            return "auto_off", warned[0]
        if now < self._asked_network_until:
            return "network", None
        if first is not None:
            return first[1], first[0]
        reachable = [p for p in self.printers.values() if p.get("connection") in ("online", "stale")]
        if now < self._network_until or not reachable:
            return "network", None
        pages = self._pages()
        return pages[self._page_index(now) % len(pages)]

    def _page_index(self, now: float) -> int:
        return self._page + int((now - self._page_since) // self.config.rotate_s)

    def _refresh(self) -> None:
        now = trio.current_time()
        self.alarm_state = alarms.observe(self.alarm_state, self.printers, now, hold_s=self.config.finished_hold_s)
        self.alarm_state, sound = alarms.due(self.alarm_state, now)
        if sound is not None and self.buzzer is not None:
            self.buzzer.play(sound)
        self._doors(now)
        modes = self._led_modes()
        for name, driver in self.leds.items():
            driver.set(modes[name])
        chosen = self._choose(now)
        if chosen != self.current:
            self.current = chosen
            self._current_since = now
        busy = any(p["phase"] in WORKING for p in self.printers.values())
        alarmed = (
            modes["red"].mode != "off" or modes["amber"].rank >= 2 or modes["green"].mode == "fast_blink"
            or chosen[0] == "auto_off" or chosen[0] in _ATTENTION
        )
        idle = now - self._activity
        if idle >= self.config.off_after_s and not (busy or alarmed):
            self.display = "off"
        elif idle >= self.config.dim_after_s:
            self.display = "dim"
        else:
            self.display = "on"
        # Night, the room's light, or asleep with the printers off (brightness.py); anything to acknowledge or an
        # auto-off countdown keeps the box awake.
        attention = bool(alarms.pending(self.alarm_state, self.printers, now)) or chosen[0] == "auto_off"
        if self.lighting.update(self.printers, now, attention=attention).mode == "asleep":
            self.display = "off"
        url = self.url()
        if now - self._network_at >= 30 or self._network.url != url:
            self._network = replace(self.network_probe(url), setup_error=read_setup_error(self.setup_errors))
            self._network_at = now
        screen, pid = chosen
        printer = self.printers.get(pid) if pid is not None else _first(self.printers)
        ids = list(self.printers)
        page = (ids.index(pid) + 1, len(ids)) if pid in ids else (1, 1)
        view = View(
            screen=_ROTATION.get(screen, "status"), printer=printer, network=self._network, now=self.wall(),
            tz=self.quiet_hours.tz,
            clock_synced=self.clock_synced(), shift=SHIFTS[int((now - self._started) // SHIFT_EVERY_S) % len(SHIFTS)],
            page=page, off_at=self.auto_off.auto_off_warnings().get(pid) if screen == "auto_off" and pid else None,
            shown_s=now - self._current_since, low=self._low_spools(pid) if screen == "filament" else (),
        )
        if self.hardware.oled == "none":
            return  # nobody can see a picture: drawing one cost a sixth of the service's CPU
        if self.display == "off":
            self.image = Image.new("1", (WIDTH, HEIGHT), 0)
        elif screen in _NOTICES:
            self.image = render_notice(_NOTICES[screen], view, ended_at=self._ended_wall(pid, now))
        else:
            self.image = render(view)
        self._moving = self.display != "off" and changes_within(view, MARQUEE_STEP_S)

    def _ended_wall(self, pid: str | None, now: float) -> float | None:
        ended = self.alarm_state.ended.get(pid) if pid is not None else None
        return None if ended is None else self.wall() - (now - ended[1])  # trio's clock to the wall clock's

    def _doors(self, now: float) -> None:
        """The door's rules (alarms.doors): a chirp, and the chamber light through the printers' controls."""
        rules = DoorRules(self.config.door_chirp, self.config.door_light, self.config.door_light_s)
        self.alarm_state, sound, actions = alarms.doors(self.alarm_state, self.printers, now, rules)
        if sound is not None and self.buzzer is not None and not self.quiet():
            self.buzzer.play(sound)
        for name, printer_id in actions:
            if self._nursery is not None:
                self._nursery.start_soon(self._light, printer_id, name)

    async def _light(self, printer_id: str, name: str) -> None:
        with trio.move_on_after(DOOR_LIGHT_DEADLINE_S):
            try:
                await self.commands.send(printer_id, name, {}, origin=DOOR_LIGHT_ORIGIN)
                return
            except Exception as exc:  # CommandError (refused, offline, no answer) or a bug: the panel goes on
                log.warning("panel: door light %s for %s not sent (%s)", name.removeprefix("light_"), printer_id,
                            getattr(exc, "message", None) or type(exc).__name__)
                return
        log.warning("panel: door light %s for %s: no answer within %g s", name.removeprefix("light_"), printer_id,
                    DOOR_LIGHT_DEADLINE_S)

    async def _draw(self) -> None:
        if self.display == "off":
            await self.screen.off()
            return
        await self.screen.set_contrast(self.lighting.contrast(self.display))
        await self.screen.show(self.image)


# The screens alarms.attention may choose that notices.render_notice draws (the HMS screen is the rotation's own).
_NOTICES: Final[Mapping[str, AttentionScreen]] = {s: s for s in get_args(AttentionScreen) if s != "hms"}
_ATTENTION: Final = frozenset(_NOTICES)
_ROTATION: Final[Mapping[str, ScreenName]] = {s: s for s in get_args(ScreenName)}


def _silent(event: Mapping[str, Any]) -> bool:
    """An HMS event about a code with nothing to do (screens.hms_silent): it never takes the screen."""
    entry = event.get("hms")
    return isinstance(entry, Mapping) and hms_silent(entry)


def _first(printers: Mapping[str, PrinterObject]) -> PrinterObject | None:
    return next(iter(printers.values()), None)


def _noticeable(before: Mapping[str, PrinterObject], after: Mapping[str, PrinterObject]) -> bool:
    """Whether a person could notice the change on the box. A printer whose object is the same object did not
    change (the hub shares them between versions), so a farm's unchanged printers cost nothing here."""
    if before.keys() != after.keys():
        return True
    return any(p is not before[pid] and _visible(p) != _visible(before[pid]) for pid, p in after.items())


def _visible(printer: PrinterObject) -> dict[str, Any]:
    # last_report_at ticks without anything visible changing, and the camera's figures change every few seconds
    # while someone watches (the screen does not show them).
    return {k: v for k, v in printer.items() if k not in ("last_report_at", "camera")}
