"""Login routes (session, login, logout, first-visit setup) and the guard that decides who passes each route."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any, Final, Literal

import bottle

from bambupi.config.file import ConfigWriteError, set_password_hash, stored_password_hash
from bambupi.passwords import hash_password, password_problem
from bambupi.secret import Secret
from bambupi.web.auth import COOKIE, CSRF_HEADER, Auth, Session, cross_site, is_lan_address
from bambupi.web.frontdoor import Request
from bambupi.web.responses import html_page, read_json_body
from bambupi.web.route_contract import (
    CALLER,
    Access,
    BadRequest,
    Conflict,
    HttpError,
    LoginRequired,
    Refused,
    ServerError,
    TooManyRequests,
    contract_of,
    expose,
)
from bambupi.web.users import OWNER_NAME, Person, Role

log = logging.getLogger("bambupi.web")

LOGIN_PAGE = Path(__file__).with_name("login.html")
PASSWORD_IS_SET = "an admin password is set already; log in, or run `bambupi set-password`"


def _client() -> str:
    # REMOTE_ADDR, never X-Forwarded-For: the box has no proxy, and a forged header must not dodge the
    # rate limit or pass as a LAN address.
    return str(bottle.request.environ.get("REMOTE_ADDR", ""))


def _from_another_site() -> bool:
    return cross_site(bottle.request.get_header("Origin"), bottle.request.get_header("Host"))


class Guard:
    """Decides who passes, in one place: the session of the current request and its person's role now (and for
    changes, the CSRF token and Origin), for Bottle's routes (``check``, through the route contract) and the front
    door's native ones (``native_refusal``)."""

    def __init__(self, auth: Auth, *, camera_role: Role | None = None) -> None:
        self.auth = auth
        self.camera_role = camera_role  # web.camera_access: None = anyone on the LAN

    def session(self) -> Session | None:
        return self.auth.sessions.get(bottle.request.get_cookie(COOKIE))

    def person(self) -> Person | None:
        """Who is logged in on the current request (with their role now), or None."""
        return self.auth.person(self.session())

    def check(self, access: Access, *, changes: bool) -> None:
        refused = self._refusal(
            access, changes, token=bottle.request.get_cookie(COOKIE), origin=bottle.request.get_header("Origin"),
            host=bottle.request.get_header("Host"), csrf=bottle.request.get_header(CSRF_HEADER),
        )
        if isinstance(refused, HttpError):
            raise refused
        bottle.request.environ[CALLER] = refused

    def native_refusal(self, request: Request, access: Access) -> tuple[int, str] | None:
        """The same checks for routes the front door serves natively (no Bottle request there): None when the
        request may go on, else the status and message to answer."""
        cookies = SimpleCookie()
        with contextlib.suppress(CookieError):
            cookies.load(request.header("Cookie") or "")
        morsel = cookies.get(COOKIE)
        refused = self._refusal(
            access, request.method not in ("GET", "HEAD"), token=morsel.value if morsel else None,
            origin=request.header("Origin"), host=request.header("Host"), csrf=request.header(CSRF_HEADER),
        )
        return (refused.status, refused.message) if isinstance(refused, HttpError) else None

    def _refusal(
        self, access: Access, changes: bool, *, token: str | None, origin: str | None, host: str | None,
        csrf: str | None,
    ) -> HttpError | Person | None:
        """The refusal, or who passes (None: anyone may, no one logged in is needed)."""
        if access is Access.ANYONE:
            return None
        needed = _needed_role(access, changes, self.camera_role)
        if needed is None:
            return None
        session = self.auth.sessions.get(token)
        person = self.auth.person(session)
        if session is None or person is None:
            return LoginRequired("log in first (POST /api/login)")
        if needed != "any" and not person.may(needed):
            return Refused(f"this needs {_WHO_MAY[needed]}: {person.name} is {_A[person.role]} {person.role}")
        if not changes:
            return person
        if cross_site(origin, host):
            return Refused("cross-site request refused")
        if csrf != session.csrf:
            return Refused(f"missing or wrong {CSRF_HEADER} header")
        return person


_A: Final = {"owner": "the", "operator": "an", "viewer": "a"}
_WHO_MAY: Final = {"owner": "the owner's login", "operator": "an operator's or the owner's login",
                   "viewer": "a login"}


def _needed_role(access: Access, changes: bool, camera_role: Role | None) -> Role | Literal["any"] | None:
    """The least role ``access`` needs; "any" for any login, None for no login at all."""
    if access is Access.VIEWER:
        if changes:
            return "operator"  # taking a snapshot: a change made from the page's controls
        return camera_role
    if access is Access.SIGNED_IN:
        return "any"
    if access is Access.OPERATOR:
        return "operator"
    return "owner"


def start_session_for(auth: Auth, person: Person) -> dict[str, Any]:
    """A new session for ``person``: its cookie on the current response, its CSRF token in the answer."""
    session = auth.sessions.create(person.name, client=_client(), agent=bottle.request.get_header("User-Agent") or "")
    bottle.response.set_cookie(
        COOKIE, session.token, httponly=True, samesite="strict", path="/", max_age=int(auth.sessions.lifetime_s)
    )
    return {"logged_in": True, "csrf": session.csrf, "user": person.name, "role": person.role}


def add_login_routes(
    app: bottle.Bottle,
    auth: Auth,
    *,
    config_path: Path | None,
    on_password_set: Callable[[str], None] | None = None,
    camera_role: Role | None = None,
) -> Guard:
    """Adds the login routes and makes their guard the doorman of every route of ``app``."""
    guard = Guard(auth, camera_role=camera_role)
    contract_of(app).doorman = guard
    setup_lock = threading.Lock()

    def start_session(person: Person) -> dict[str, Any]:
        return start_session_for(auth, person)

    def session_info() -> dict[str, Any]:
        session = guard.session()
        person = auth.person(session)
        if person is None:
            session = None
        return {
            "logged_in": session is not None,
            "csrf": session.csrf if session else None,
            "user": person.name if person else None,
            "role": person.role if person else None,
            "password_set": auth.password_set,
            "setup_allowed": not auth.password_set and is_lan_address(_client()),
        }

    def login() -> dict[str, Any]:
        client = _client()
        if _from_another_site():
            # Another site's page must not try passwords with the owner's browser (and lock the owner out).
            raise Refused("cross-site request refused")
        wait = auth.limiter.retry_after(client)
        if wait > 0:
            raise too_many(wait)
        if not auth.password_set:
            raise Conflict("no admin password yet: set one (POST /api/setup or `bambupi set-password`)")
        body = read_json_body()
        password = body.get("password") if body else None
        if not isinstance(password, str):
            raise BadRequest("password: required (JSON body {\"password\": \"...\"})")
        name = body.get("name") if body else None
        if name is not None and not isinstance(name, str):
            raise BadRequest("name: a text (leave it out for the owner)")
        name = (name or "").strip() or OWNER_NAME
        # Counted before the check, so that parallel requests cannot all try before the first one is known wrong.
        wait = auth.limiter.reserve(client)
        if wait > 0:
            raise too_many(wait)
        person = auth.check(password, name)
        if person is None:
            log.warning("failed login from %s", client)
            raise LoginRequired("wrong name or password" if name != OWNER_NAME else "wrong password")
        auth.limiter.succeeded(client)
        log.info("%s logged in from %s", person.name, client)
        return start_session(person)

    def too_many(wait: float) -> HttpError:
        seconds = int(wait) + 1
        message = f"too many failed logins; try again in {seconds} s"
        return TooManyRequests(message, headers={"Retry-After": str(seconds)})

    def logout() -> dict[str, Any]:
        auth.sessions.end(bottle.request.get_cookie(COOKIE))
        bottle.response.delete_cookie(COOKIE, path="/")
        return {"logged_in": False}

    def setup() -> dict[str, Any]:
        if auth.password_set:
            raise Conflict(PASSWORD_IS_SET)
        if _from_another_site():
            # Any web page a visitor on the LAN opens could otherwise choose the box's first password.
            raise Refused("cross-site request refused")
        if not is_lan_address(_client()):
            raise Refused("the first password can only be set from the local network")
        # DNS rebinding (another site's name pointed at the box passes the Origin and LAN checks) is refused by
        # the front door, for every route: it answers only to the box's own names.
        body = read_json_body()
        password = body.get("password") if body else None
        if not isinstance(password, str):
            raise BadRequest("password: required (JSON body {\"password\": \"...\"})")
        problem = password_problem(password)
        if problem is not None:
            raise BadRequest(f"password: {problem}")
        # One first password: of two setups at once (two tabs, or someone racing the owner) the second is refused
        # instead of silently replacing the first one after it was confirmed.
        with setup_lock:
            return first_password(password)

    def first_password(password: str) -> dict[str, Any]:
        if auth.password_set:
            raise Conflict(PASSWORD_IS_SET)
        stored = stored_password_hash(config_path) if config_path is not None else None
        if stored is not None:
            # `bambupi set-password` wrote one while the service ran: that is the owner's choice, not the next
            # visitor's. Use it from now on (no restart needed).
            auth.set_hash(Secret(stored))
            log.info("admin password taken from %s (set there since bambupi started)", config_path)
            raise Conflict(PASSWORD_IS_SET)
        hashed = hash_password(password)
        if config_path is not None:
            try:
                set_password_hash(config_path, hashed)
            except (OSError, ConfigWriteError) as exc:
                log.error("could not save the admin password to %s: %s", config_path, exc)
                raise ServerError(f"could not save the password to {config_path}") from None
        auth.set_hash(Secret(hashed))
        if on_password_set is not None:
            on_password_set(hashed)
        log.info("admin password set from %s", _client())
        return start_session(Person(OWNER_NAME, "owner"))

    expose(app, "GET", "/api/session", session_info, Access.ANYONE)
    # Logging in and the first password check their callers themselves (rate limit, Origin, LAN address).
    expose(app, "POST", "/api/login", login, Access.ANYONE)
    expose(app, "POST", "/api/logout", logout, Access.SIGNED_IN)
    expose(app, "POST", "/api/setup", setup, Access.ANYONE)
    expose(app, "GET", "/login", html_page(LOGIN_PAGE), Access.ANYONE)
    return guard
