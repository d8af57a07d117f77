"""Login routes (session, login, logout, first-visit setup) and the guard every changing route passes."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

import bottle

from bambupi.config.file import ConfigWriteError, set_password_hash, stored_password_hash
from bambupi.passwords import hash_password, password_problem
from bambupi.secret import Secret
from bambupi.web.auth import COOKIE, CSRF_HEADER, Auth, Session, cross_site, is_lan_address
from bambupi.web.frontdoor import Request
from bambupi.web.responses import error_response, html_page, json_response, read_json_body

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
    """Checks the session (and for changes, the CSRF token and Origin) of the current request."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    def native_refusal(self, request: Request, changes: bool, *, watching_needs_login: bool) -> tuple[int, str] | None:
        """The same checks for routes the front door serves natively (no Bottle request there)."""
        if not changes and not watching_needs_login:
            return None
        cookies = SimpleCookie()
        with contextlib.suppress(CookieError):
            cookies.load(request.header("Cookie") or "")
        morsel = cookies.get(COOKIE)
        session = self.auth.sessions.get(morsel.value if morsel else None)
        if session is None:
            return 401, "log in first (POST /api/login)"
        if not changes:
            return None
        if cross_site(request.header("Origin"), request.header("Host")):
            return 403, "cross-site request refused"
        if request.header(CSRF_HEADER) != session.csrf:
            return 403, f"missing or wrong {CSRF_HEADER} header"
        return None

    def session(self) -> Session | None:
        return self.auth.sessions.get(bottle.request.get_cookie(COOKIE))

    def refusal(self, *, changes: bool = True) -> str | None:
        """None when the request may go on, else the JSON error body (status already set)."""
        session = self.session()
        if session is None:
            return error_response(401, "log in first (POST /api/login)")
        if not changes:
            return None
        if _from_another_site():
            return error_response(403, "cross-site request refused")
        if bottle.request.get_header(CSRF_HEADER) != session.csrf:
            return error_response(403, f"missing or wrong {CSRF_HEADER} header")
        return None


def add_login_routes(
    app: bottle.Bottle, auth: Auth, *, config_path: Path | None, on_password_set: Callable[[str], None] | None = None
) -> Guard:
    guard = Guard(auth)
    setup_lock = threading.Lock()

    def start_session() -> dict[str, Any]:
        session = auth.sessions.create()
        bottle.response.set_cookie(
            COOKIE, session.token, httponly=True, samesite="strict", path="/", max_age=int(auth.sessions.lifetime_s)
        )
        return {"logged_in": True, "csrf": session.csrf}

    def session_info() -> str:
        session = guard.session()
        return json_response(
            200,
            {
                "logged_in": session is not None,
                "csrf": session.csrf if session else None,
                "password_set": auth.password_set,
                "setup_allowed": not auth.password_set and is_lan_address(_client()),
            },
        )

    def login() -> str:
        client = _client()
        if _from_another_site():
            # Another site's page must not try passwords with the owner's browser (and lock the owner out).
            return error_response(403, "cross-site request refused")
        wait = auth.limiter.retry_after(client)
        if wait > 0:
            return too_many(wait)
        if not auth.password_set:
            return error_response(409, "no admin password yet: set one (POST /api/setup or `bambupi set-password`)")
        body = read_json_body()
        password = body.get("password") if body else None
        if not isinstance(password, str):
            return error_response(400, "password: required (JSON body {\"password\": \"...\"})")
        # Counted before the check, so that parallel requests cannot all try before the first one is known wrong.
        wait = auth.limiter.reserve(client)
        if wait > 0:
            return too_many(wait)
        if not auth.check(password):
            log.warning("failed login from %s", client)
            return error_response(401, "wrong password")
        auth.limiter.succeeded(client)
        return json_response(200, start_session())

    def too_many(wait: float) -> str:
        bottle.response.set_header("Retry-After", str(int(wait) + 1))
        return error_response(429, f"too many failed logins; try again in {int(wait) + 1} s")

    def logout() -> str:
        refused = guard.refusal()
        if refused is not None:
            return refused
        auth.sessions.end(bottle.request.get_cookie(COOKIE))
        bottle.response.delete_cookie(COOKIE, path="/")
        return json_response(200, {"logged_in": False})

    def setup() -> str:
        if auth.password_set:
            return error_response(409, PASSWORD_IS_SET)
        if _from_another_site():
            # Any web page a visitor on the LAN opens could otherwise choose the box's first password.
            return error_response(403, "cross-site request refused")
        if not is_lan_address(_client()):
            return error_response(403, "the first password can only be set from the local network")
        # DNS rebinding (another site's name pointed at the box passes the Origin and LAN checks) is refused by
        # the front door, for every route: it answers only to the box's own names.
        body = read_json_body()
        password = body.get("password") if body else None
        if not isinstance(password, str):
            return error_response(400, "password: required (JSON body {\"password\": \"...\"})")
        problem = password_problem(password)
        if problem is not None:
            return error_response(400, f"password: {problem}")
        # One first password: of two setups at once (two tabs, or someone racing the owner) the second is refused
        # instead of silently replacing the first one after it was confirmed.
        with setup_lock:
            return first_password(password)

    def first_password(password: str) -> str:
        if auth.password_set:
            return error_response(409, PASSWORD_IS_SET)
        stored = stored_password_hash(config_path) if config_path is not None else None
        if stored is not None:
            # `bambupi set-password` wrote one while the service ran: that is the owner's choice, not the next
            # visitor's. Use it from now on (no restart needed).
            auth.set_hash(Secret(stored))
            log.info("admin password taken from %s (set there since bambupi started)", config_path)
            return error_response(409, PASSWORD_IS_SET)
        hashed = hash_password(password)
        if config_path is not None:
            try:
                set_password_hash(config_path, hashed)
            except (OSError, ConfigWriteError) as exc:
                log.error("could not save the admin password to %s: %s", config_path, exc)
                return error_response(500, f"could not save the password to {config_path}")
        auth.set_hash(Secret(hashed))
        if on_password_set is not None:
            on_password_set(hashed)
        log.info("admin password set from %s", _client())
        return json_response(200, start_session())

    app.route("/api/session", "GET", session_info)
    app.route("/api/login", "POST", login)
    app.route("/api/logout", "POST", logout)
    app.route("/api/setup", "POST", setup)
    app.route("/login", "GET", html_page(LOGIN_PAGE))
    return guard
