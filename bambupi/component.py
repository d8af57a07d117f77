"""The one shape of every part of the box, and the one rule for a part that fails.

A **component** (printer links, camera, panel, power, notify, discovery, the web front door, and parts to come) has:

- ``name``: what ``/healthz`` and the log call it;
- ``sections``: the config sections it owns (keys of ``config.SCHEMA``; several parts may share one, as ``printer``);
- ``add_routes(web)``: adds its pages and JSON routes to ``web.app`` and its trio-native streams to ``web.native``,
  before the front door opens (it calls the part's ``add_*_routes(app, guard, ...)``);
- ``async run(*, task_status)``: started with ``nursery.start``, so "started" means ready. It may be called again
  after it failed, on the same object, so it sets up what it needs each time;
- ``async apply(old, new)``: applies a change of its sections live and returns what it did, in words for the
  settings page (``[]`` when there was nothing to do), or :data:`RESTART` when the change waits for a restart. It is
  called whether or not ``run`` is running now (a part that failed takes the new settings at its restart).

Parts that need each other get small typed interfaces (Protocols) through their constructors, so the service builds
them in dependency order; nothing is attached by setting attributes after start. Adding a part is its folder (its
code, its routes, its component class) plus one line in the service's component list.

The :class:`Supervisor` starts the components in list order and keeps them running: a component whose ``run`` raises
is logged once per failure streak (with the exception), shown in ``/healthz`` and restarted after a backoff on the
monotonic clock (doubling up to a cap; a streak ends after ``healthy_after_s`` of running), while the rest keeps
running. Cancellation and KeyboardInterrupt are not failures. A config error ends the service before any part starts.
It keeps each part's health on a :class:`HealthBoard`: ``/healthz`` reads it, and the page's live feed waits on it
to show a banner for each part that is not running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import bottle
import trio

from bambupi.config import SCHEMA, Config
from bambupi.secret import Secret, redact
from bambupi.web.frontdoor import NativeRouter
from bambupi.web.login import Guard

log = logging.getLogger("bambupi")

RESTART: Final = "restart"
Applied = list[str] | Literal["restart"]
ERROR_MESSAGE_CHARS: Final = 200


@dataclass
class Web:
    """What a component adds its routes to: the Bottle app (pages, JSON), the owner's guard, and the routers of
    the streams the front door serves natively in trio (WebSocket, MJPEG)."""

    app: bottle.Bottle
    guard: Guard
    native: list[NativeRouter] = field(default_factory=list)


class Component(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def sections(self) -> tuple[str, ...]: ...

    def add_routes(self, web: Web) -> None: ...

    async def run(self, *, task_status: trio.TaskStatus[Any] = ...) -> None: ...

    async def apply(self, old: Config, new: Config) -> Applied: ...


def changed_sections(old: Config, new: Config) -> list[str]:
    """The config sections (``SCHEMA`` keys) whose values differ."""
    return [name for name, section in SCHEMA.items() if getattr(old, section.attr) != getattr(new, section.attr)]


class RestartOnly:
    """A section nothing running applies: a change takes effect when the box starts (``[system]`` is read by the
    SD-card image's first boot)."""

    def __init__(self, name: str, sections: tuple[str, ...]) -> None:
        self.name = name
        self.sections = sections

    def add_routes(self, web: Web) -> None:
        pass

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def apply(self, old: Config, new: Config) -> Applied:
        return RESTART


@dataclass
class _Health:
    state: str = "starting"  # starting | running | failed | restarting | stopped
    failures: int = 0  # in the current streak
    error_type: str | None = None
    error: str | None = None
    retry_at: float | None = None  # trio clock

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.state in ("starting", "running", "stopped"), "state": self.state}
        if self.failures:
            body["failures"] = self.failures
            body["error"] = {"type": self.error_type, "message": self.error}
        if self.state == "failed" and self.retry_at is not None:
            body["retry_in_s"] = round(max(0.0, self.retry_at - trio.current_time()), 1)
        return body


class HealthBoard:
    """Each component's health as the :class:`Supervisor` keeps it, and a wait for a change of what is failing.

    Made before the parts (the web's live feed reads it) and handed to the Supervisor, which writes it."""

    def __init__(self) -> None:
        self._parts: dict[str, _Health] = {}
        self._shown: list[tuple[str, str, str | None, int]] = []  # what failing() says, less its countdown
        self._lot = trio.lowlevel.ParkingLot()
        self.version = 0  # bumped when failing() changes (a part fails, restarts, runs again), not on its countdown

    def add(self, name: str) -> _Health:
        health = self._parts[name] = _Health()
        return health

    def changed(self) -> None:
        """Called by the Supervisor after it changed a part's health."""
        shown = [(name, h.state, h.error_type, h.failures) for name, h in self._parts.items() if _failing(h)]
        if shown != self._shown:
            self._shown = shown
            self.version += 1
            self._lot.unpark_all()

    async def wait_for_change(self, version: int) -> None:
        """Return once :attr:`version` is not ``version``."""
        while self.version == version:
            await self._lot.park()

    def to_json(self) -> dict[str, dict[str, Any]]:
        """``/healthz``'s entry of each component (in trio's thread)."""
        return {name: health.to_json() for name, health in self._parts.items()}

    def failing(self) -> list[dict[str, Any]]:
        """The parts that failed and wait for (or are in) their restart, in start order, as the page shows them:
        ``{name, state: failed|restarting, error: <exception type>, failures, retry_in_s}`` (``retry_in_s`` only
        while failed). The error's message stays in ``/healthz``: the banner needs only what broke."""
        lines: list[dict[str, Any]] = []
        for name, health in self._parts.items():
            if not _failing(health):
                continue
            line: dict[str, Any] = {
                "name": name, "state": health.state, "error": health.error_type, "failures": health.failures,
            }
            if health.state == "failed" and health.retry_at is not None:
                line["retry_in_s"] = round(max(0.0, health.retry_at - trio.current_time()), 1)
            lines.append(line)
        return lines


def _failing(health: _Health) -> bool:
    return health.state in ("failed", "restarting")


class Supervisor:
    """Starts components in order, restarts one that fails, and applies config changes through them."""

    def __init__(
        self,
        components: Sequence[Component],
        *,
        secrets: Callable[[], Iterable[Secret]] = tuple,
        must_start: Collection[str] = (),
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 300.0,
        healthy_after_s: float = 120.0,
        board: HealthBoard | None = None,
    ) -> None:
        names = [c.name for c in components]
        if len(set(names)) != len(names):
            raise ValueError(f"two components share a name: {names}")
        self.components = list(components)
        self._secrets = secrets  # an error's message is shown in /healthz: any secret in it is masked
        # Parts the box is nothing without (the front door: its port taken): their first start's failure ends the
        # service, as a config error does, so systemd says why instead of a box that answers nowhere.
        self._must_start = frozenset(must_start)
        self._backoff = (backoff_min_s, backoff_max_s)
        self._healthy_after_s = healthy_after_s
        self.board = board or HealthBoard()
        self._health = {c.name: self.board.add(c.name) for c in components}

    async def start(self, nursery: trio.Nursery) -> None:
        """Start every component in list order; each has started (or failed and waits for its restart) on return."""
        for component in self.components:
            await nursery.start(self._supervise, component)

    def health(self) -> dict[str, dict[str, Any]]:
        """``/healthz``'s entry of each component (in trio's thread)."""
        return self.board.to_json()

    async def reconfigure(self, old: Config, new: Config) -> dict[str, list[str]]:
        """Each component whose sections changed applies them: ``{"applied": [...], "restart_required": [...]}``
        (what was applied live, in words, and the sections that wait for a restart)."""
        changed = changed_sections(old, new)
        applied: list[str] = []
        restart: list[str] = []
        owned: set[str] = set()
        for component in self.components:
            mine = [s for s in component.sections if s in changed]
            owned.update(mine)
            if not mine:
                continue
            try:
                outcome = await component.apply(old, new)
            except Exception as exc:
                # The file is saved: what could not be applied now takes effect at the next start.
                log.error("settings: %s could not apply its new settings (%s)", component.name, type(exc).__name__,
                          exc_info=exc)
                outcome = RESTART
            if outcome == RESTART:
                restart += [s for s in mine if s not in restart]
            else:
                applied += outcome
        restart += [s for s in changed if s not in owned and s not in restart]  # no owner yet: never lost silently
        for name in restart:
            log.info("settings: %s changed; it takes effect when bambupi restarts", name)
        return {"applied": applied, "restart_required": restart}

    async def _supervise(self, component: Component, *, task_status: trio.TaskStatus[None]) -> None:
        health = self._health[component.name]
        low, high = self._backoff
        delay = low
        first = True
        while True:
            began: float | None = None
            try:
                async with trio.open_nursery() as nursery:
                    settled = trio.CancelScope()
                    await nursery.start(self._run, component, settled)
                    began = trio.current_time()
                    health.state, health.retry_at = "running", None
                    self.board.changed()
                    nursery.start_soon(self._settle, component, health, settled)
                    if first:
                        first = False
                        task_status.started()
                health.state = "stopped"  # its run returned: it has nothing more to do (discovery switched off)
                self.board.changed()
                if first:
                    task_status.started()
                return
            except Exception as exc:  # Cancelled and KeyboardInterrupt are BaseExceptions: they pass
                if first and component.name in self._must_start:
                    raise
                now = trio.current_time()
                if began is not None and now - began >= self._healthy_after_s:
                    health.failures, delay = 0, low  # it ran well for a while: a fresh failure
                health.failures += 1
                cause = _leaf(exc)
                health.error_type = type(cause).__name__
                health.error = redact(str(cause), *self._secrets())[:ERROR_MESSAGE_CHARS]
                health.state, health.retry_at = "failed", now + delay
                self.board.changed()
                if health.failures == 1:
                    log.error("%s failed; restarting it in %g s (the rest keeps running)", component.name, delay,
                              exc_info=exc)
                else:
                    log.debug("%s failed again (%d in a row): %s", component.name, health.failures, health.error_type)
                if first:
                    first = False
                    task_status.started()
            await trio.sleep(delay)
            delay = min(delay * 2, high)
            health.state = "restarting"
            self.board.changed()

    @staticmethod
    async def _run(
        component: Component, settled: trio.CancelScope, *, task_status: trio.TaskStatus[Any]
    ) -> None:
        try:
            await component.run(task_status=task_status)
        finally:
            settled.cancel()  # a run that ended (or failed) did not settle

    async def _settle(self, component: Component, health: _Health, settled: trio.CancelScope) -> None:
        """After ``healthy_after_s`` of running, a failure streak is over: "recovered" is said once."""
        with settled:
            await trio.sleep(self._healthy_after_s)
            if health.failures:
                log.info("%s recovered (running for %g s after %d failures)", component.name,
                         self._healthy_after_s, health.failures)
                health.failures, health.error_type, health.error = 0, None, None


def _leaf(exc: BaseException) -> BaseException:
    """The error inside the nurseries' exception groups, for its name and message."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
