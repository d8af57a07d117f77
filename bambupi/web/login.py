"""Login routes (session, login, logout, first-visit setup), the guard every changing route passes, and the
printer command route that needs it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bottle
import trio

from bambupi.config_file import ConfigWriteError, set_password_hash
from bambupi.passwords import hash_password, password_problem
from bambupi.printer.commands import CommandError, Controls
from bambupi.secret import Secret
from bambupi.web.auth import COOKIE, CSRF_HEADER, Auth, Session, is_lan_address

log = logging.getLogger("bambupi.web")

LOGIN_PAGE = Path(__file__).with_name("login.html")


def _json(status: int, body: Any) -> str:
    bottle.response.status = status
    bottle.response.content_type = "application/json"
    bottle.response.set_header("Cache-Control", "no-store")
    return json.dumps(body, separators=(",", ":"))


def _error(status: int, message: str) -> str:
    return _json(status, {"error": message, "status": status})


def _client() -> str:
    # REMOTE_ADDR, never X-Forwarded-For: the box has no proxy, and a forged header must not dodge the
    # rate limit or pass as a LAN address.
    return str(bottle.request.environ.get("REMOTE_ADDR", ""))


def _body() -> dict[str, Any] | None:
    try:
        data = json.loads(bottle.request.body.read() or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class Guard:
    """Checks the session (and for changes, the CSRF token and Origin) of the current request."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    def session(self) -> Session | None:
        return self.auth.sessions.get(bottle.request.get_cookie(COOKIE))

    def refusal(self, *, changes: bool = True) -> str | None:
        """None when the request may go on, else the JSON error body (status already set)."""
        session = self.session()
        if session is None:
            return _error(401, "log in first (POST /api/login)")
        if not changes:
            return None
        origin = bottle.request.get_header("Origin")
        if origin and urlsplit(origin).netloc != bottle.request.get_header("Host"):
            return _error(403, "cross-site request refused")
        if bottle.request.get_header(CSRF_HEADER) != session.csrf:
            return _error(403, f"missing or wrong {CSRF_HEADER} header")
        return None


def add_login_routes(
    app: bottle.Bottle, auth: Auth, *, config_path: Path | None, on_password_set: Callable[[str], None] | None = None
) -> Guard:
    guard = Guard(auth)

    def start_session() -> dict[str, Any]:
        session = auth.sessions.create()
        bottle.response.set_cookie(
            COOKIE, session.token, httponly=True, samesite="strict", path="/", max_age=int(auth.sessions.lifetime_s)
        )
        return {"logged_in": True, "csrf": session.csrf}

    def session_info() -> str:
        session = guard.session()
        return _json(
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
        wait = auth.limiter.retry_after(client)
        if wait > 0:
            bottle.response.set_header("Retry-After", str(int(wait) + 1))
            return _error(429, f"too many failed logins; try again in {int(wait) + 1} s")
        if not auth.password_set:
            return _error(409, "no admin password yet: set one first (POST /api/setup or `bambupi set-password`)")
        body = _body()
        password = body.get("password") if body else None
        if not isinstance(password, str):
            return _error(400, "password: required (JSON body {\"password\": \"...\"})")
        if not auth.check(password):
            auth.limiter.failed(client)
            log.warning("failed login from %s", client)
            return _error(401, "wrong password")
        auth.limiter.succeeded(client)
        return _json(200, start_session())

    def logout() -> str:
        refused = guard.refusal()
        if refused is not None:
            return refused
        auth.sessions.end(bottle.request.get_cookie(COOKIE))
        bottle.response.delete_cookie(COOKIE, path="/")
        return _json(200, {"logged_in": False})

    def setup() -> str:
        if auth.password_set:
            return _error(409, "an admin password is already set; log in, or use `bambupi set-password` on the box")
        if not is_lan_address(_client()):
            return _error(403, "the first password can only be set from the local network")
        body = _body()
        password = body.get("password") if body else None
        if not isinstance(password, str):
            return _error(400, "password: required (JSON body {\"password\": \"...\"})")
        problem = password_problem(password)
        if problem is not None:
            return _error(400, f"password: {problem}")
        hashed = hash_password(password)
        if config_path is not None:
            try:
                set_password_hash(config_path, hashed)
            except (OSError, ConfigWriteError) as exc:
                log.error("could not save the admin password to %s: %s", config_path, exc)
                return _error(500, f"could not save the password to {config_path}")
        auth.set_hash(Secret(hashed))
        if on_password_set is not None:
            on_password_set(hashed)
        log.info("admin password set from %s", _client())
        return _json(200, start_session())

    def login_page() -> str:
        bottle.response.content_type = "text/html; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        return LOGIN_PAGE.read_text("utf-8")

    app.route("/api/session", "GET", session_info)
    app.route("/api/login", "POST", login)
    app.route("/api/logout", "POST", logout)
    app.route("/api/setup", "POST", setup)
    app.route("/login", "GET", login_page)
    return guard


def add_command_routes(app: bottle.Bottle, guard: Guard, controls: Controls) -> None:
    def command(printer_id: str) -> str:
        refused = guard.refusal()
        if refused is not None:
            return refused
        body = _body()
        name = body.get("command") if body else None
        if not isinstance(name, str) or body is None:
            return _error(400, "command: required (JSON body {\"command\": \"pause\"})")
        try:
            outcome = trio.from_thread.run(controls.send, printer_id, name, body)
        except CommandError as exc:
            return _error(exc.status, exc.message)
        status = 200 if outcome.result == "success" else 502
        return _json(status, {"printer": printer_id, "command": name, **outcome.to_json()})

    app.route("/api/printers/<printer_id>/commands", "POST", command)
