"""The route contract: every Bottle route declares who may call it and raises typed errors; one place answers them.

A feature adds a route with ``expose(app, "POST", "/api/...", handler, Access.OWNER)``. Before the handler runs,
the app's ``RouteContract`` (installed by ``make_app``) asks the doorman whether this request may pass; the
handler then returns what to send (a dict or list: 200 JSON; a ``Reply``: JSON with another status; anything
else, a page or a file, as it is) or raises an ``HttpError`` whose message is safe to show. The contract turns
both into JSON of one shape, ``{"error": message, "status": code, ...}``, and any other exception into a 500 with
a generic message, logged once with its traceback. This is kvmd's ``exposed_http(auth_required=...)`` with
Bottle left as the framework behind the front door.
"""

from __future__ import annotations

import enum
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import bottle

from bambupi.web import frame
from bambupi.web.responses import json_response

log = logging.getLogger("bambupi.web")

ACCESS: Final = "access"  # the key of a route's auth level in its Bottle route config
_READS: Final = frozenset({"GET", "HEAD"})
REFUSAL_PAGE: Final = Path(__file__).with_name("refusal.html")


class Access(enum.Enum):
    """Who may call a route."""

    ANYONE = "anyone"  # watching the printer is open to the LAN
    VIEWER = "viewer"  # the camera: anyone, or only the roles web.camera_access lets see it
    SIGNED_IN = "signed_in"  # anyone logged in, whatever their role (their own sessions, logging out)
    OPERATOR = "operator"  # an operator or the owner: the printer's controls, the plug, the spools on hand
    OWNER = "owner"  # the owner: settings, people, deleting history
    # Every level but ANYONE needs a session; a change (any method but GET and HEAD) also its CSRF token from the
    # box's own page. The Guard (bambupi.web.login) is the one place that decides.


CALLER: Final = "bambupi.caller"  # the request environ key where the Guard leaves who passed (a Person)


def caller_origin(where: str = "the page") -> str:
    """How the person behind the current request is named in command logs: "alice (the page)"; just ``where``
    when no one is logged in (a route open to anyone)."""
    person = bottle.request.environ.get(CALLER)
    origin = getattr(person, "origin", None)
    return str(origin(where)) if callable(origin) else where


class HttpError(Exception):
    """An answer other than success. ``message`` is shown to the caller: never put a secret in it.
    ``fields`` go into the JSON body beside ``error`` and ``status`` (e.g. which settings were wrong); ``status``
    is the subclass's unless given (for errors that carry their own, like a printer command's)."""

    status: int = 500

    def __init__(
        self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None, **fields: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status, **self.fields}


class BadRequest(HttpError):
    status = 400


class LoginRequired(HttpError):
    status = 401


class Refused(HttpError):
    status = 403


class NotFound(HttpError):
    status = 404


class Conflict(HttpError):
    """The request is fine but the state is not (already busy, changed meanwhile, would interrupt a print)."""

    status = 409


class UpgradeRequired(HttpError):
    status = 426


class TooManyRequests(HttpError):
    status = 429


class ServerError(HttpError):
    """The box failed in a way worth telling (e.g. could not save a file); the message names what failed."""

    status = 500


class BadGateway(HttpError):
    """The printer, plug or service the request waited for failed or did not answer."""

    status = 502


class Unavailable(HttpError):
    status = 503


@dataclass(frozen=True)
class Reply:
    """A JSON answer with a status other than 200 that is no error (202 queued, 502 with a command's outcome)."""

    status: int
    body: Any


class Doorman(Protocol):
    """Decides whether the current request may reach a route of ``access``; raises ``LoginRequired`` or
    ``Refused`` when not (the login's ``Guard``)."""

    def check(self, access: Access, *, changes: bool) -> None: ...


def expose(app: bottle.Bottle, method: str, path: str, handler: Callable[..., Any], access: Access) -> None:
    """Serve ``handler`` at ``method path`` to callers of ``access``."""
    app.route(path, method, handler, **{ACCESS: access})


def access_of(route: bottle.Route) -> Access | None:
    """The auth level a route declared, or None when it declared none (``expose`` was not used)."""
    access = route.config.get(ACCESS)
    return access if isinstance(access, Access) else None


class RouteContract:
    """The Bottle plugin that checks each route's access, answers its errors and renders its JSON."""

    name = "bambupi-route-contract"
    api = 2

    def __init__(self) -> None:
        # Set once the login is added; until then (or in an app without one) only ``Access.ANYONE`` routes answer.
        self.doorman: Doorman | None = None

    def setup(self, app: bottle.Bottle) -> None:
        """Answers Bottle gives before any route runs (no route, wrong method) in the same JSON shape."""
        for code in (400, 403, 404, 405, 500):  # never Bottle's HTML page
            app.error_handler[code] = _bottle_error


    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        access = access_of(route)
        if access is None:
            # Fails closed: a route added without ``expose`` is never served unguarded (and the route walk test
            # names it).
            raise TypeError(f"{route.method} {route.rule} declares no access level: add it with expose()")

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                if access is not Access.ANYONE:
                    if self.doorman is None:
                        raise LoginRequired("log in first (POST /api/login)")
                    self.doorman.check(access, changes=bottle.request.method not in _READS)
                result = callback(*args, **kwargs)
            except HttpError as exc:
                for name, value in exc.headers.items():
                    bottle.response.set_header(name, value)
                if bottle.request.method == "GET" and _wants_page():
                    return refusal_page(exc)  # a person who opened a page they may not see reads why
                return json_response(exc.status, exc.body())
            except bottle.HTTPResponse:
                raise  # Bottle's own answers (a static file's 304, an abort) pass through
            except Exception:
                # The traceback goes to the log once; the caller learns nothing of the inside.
                log.exception("%s %s failed", bottle.request.method, route.rule)
                return _error(500, "internal error")
            if isinstance(result, Reply):
                return json_response(result.status, result.body)
            if isinstance(result, (dict, list)):
                return json_response(200, result)
            return result

        return guarded


def _wants_page() -> bool:
    """A browser navigating to a page (not the page's script fetching JSON)."""
    return bottle.request.get_header("Sec-Fetch-Mode") == "navigate" or (
        "text/html" in (bottle.request.get_header("Accept") or "") and not bottle.request.path.startswith("/api/")
    )


def refusal_page(exc: HttpError) -> str:
    """A small page in place of JSON: not logged in goes to the login (and back here after it); a role that may
    not see the page reads which role may, with a way to log in as someone else."""
    if exc.status == 401:
        bottle.response.status = 303
        bottle.response.set_header("Location", "/login?next=" + urllib.parse.quote(bottle.request.fullpath))
        bottle.response.set_header("Cache-Control", "no-store")
        return ""
    bottle.response.status = exc.status
    bottle.response.content_type = "text/html; charset=utf-8"
    bottle.response.set_header("Cache-Control", "no-store")
    return frame.render(REFUSAL_PAGE, message=exc.message)  # the template escapes it


def _error(status: int, message: str) -> str:
    return json_response(status, {"error": message, "status": status})


def _bottle_error(err: bottle.HTTPError) -> str:
    status = int(err.status_code)
    if status == 404:
        return _error(404, f"no route {bottle.request.path}")
    if status == 405:
        return _error(405, f"method {bottle.request.method} not allowed here")
    if status >= 500:
        return _error(status, "internal error")
    return _error(status, str(err.body) or "error")


def contract_of(app: bottle.Bottle) -> RouteContract:
    """The app's contract plugin (``make_app`` installs it)."""
    for plugin in app.plugins:
        if isinstance(plugin, RouteContract):
            return plugin
    raise LookupError("this Bottle app has no RouteContract: build it with bambupi.web.api.make_app")
