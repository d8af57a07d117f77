"""The people routes: the owner's users page (invite, change a role, remove), everyone's own sessions (sign out
everywhere), and accepting an invitation (choose a password). Who may call each is declared with ``expose``; the
Guard (bambupi.web.login) decides.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import bottle

from bambupi.web.auth import COOKIE, Auth, cross_site
from bambupi.web.login import start_session_for
from bambupi.web.responses import html_page, read_json_body
from bambupi.web.route_contract import (
    Access,
    BadRequest,
    HttpError,
    LoginRequired,
    NotFound,
    Refused,
    ServerError,
    TooManyRequests,
    Unavailable,
    caller_origin,
    expose,
)
from bambupi.web.users import (
    INVITE_HOURS,
    OWNER_NAME,
    ROLES,
    Person,
    Role,
    UsersError,
    UsersFileError,
    UserStore,
)

log = logging.getLogger("bambupi.web")

HERE = Path(__file__).parent
USERS_PAGE = HERE / "users.html"
SESSIONS_PAGE = HERE / "sessions.html"
INVITE_PAGE = HERE / "invite.html"


def add_people_routes(app: bottle.Bottle, auth: Auth) -> None:
    def store() -> UserStore:
        if auth.users is None:
            raise Unavailable("this box keeps no users (it runs without a data folder): the owner alone")
        return auth.users

    def me() -> Person:
        person = auth.person(auth.sessions.get(bottle.request.get_cookie(COOKIE)))
        if person is None:  # the Guard let it pass a moment ago: the person was removed meanwhile
            raise LoginRequired("log in first (POST /api/login)")
        return person

    def failed(exc: UsersError) -> HttpError:
        if isinstance(exc, UsersFileError):
            return ServerError(str(exc))
        return BadRequest(str(exc))

    # -- the owner's users page ----------------------------------------------------------------------------------
    def overview() -> dict[str, Any]:
        users = store()
        people: list[dict[str, Any]] = [{"name": OWNER_NAME, "role": "owner", "created_at": None, "first_owner": True,
                   "sessions": len(auth.sessions.of(OWNER_NAME))}]
        people += [
            {"name": u.name, "role": u.role, "created_at": u.created_at, "first_owner": False,
             "sessions": len(auth.sessions.of(u.name))}
            for u in users.users()
        ]
        invites = [{"id": i.id, "name": i.name, "role": i.role, "expires_at": i.expires_at} for i in users.invites()]
        return {"users": people, "invites": invites, "roles": list(ROLES), "problem": users.problem}

    def invite() -> dict[str, Any]:
        body = read_json_body() or {}
        name, role, hours = body.get("name"), body.get("role"), body.get("hours", INVITE_HOURS)
        if not isinstance(name, str) or not isinstance(role, str):
            raise BadRequest("name and role: required (JSON body {\"name\": \"alice\", \"role\": \"operator\"})")
        if role not in ROLES:
            raise BadRequest(f"role: one of {', '.join(ROLES)}")
        if isinstance(hours, bool) or not isinstance(hours, (int, float)):
            raise BadRequest("hours: a number")
        try:
            made, code = store().invite(name.strip(), _role(role), hours=float(hours))
        except UsersError as exc:
            raise failed(exc) from None
        # The code is in this answer and nowhere else: not in a log, not in the file (its hash is).
        return {"id": made.id, "name": made.name, "role": made.role, "expires_at": made.expires_at, "code": code,
                "path": f"/invite#code={code}"}

    def withdraw(invite_id: str) -> dict[str, Any]:
        try:
            if not store().withdraw(invite_id):
                raise NotFound("no such invitation (used, expired or withdrawn already)")
        except UsersError as exc:
            raise failed(exc) from None
        return {"withdrawn": invite_id}

    def change(name: str) -> dict[str, Any]:
        if name.lower() == OWNER_NAME:
            raise BadRequest("the first owner stays the owner")
        body = read_json_body() or {}
        role = body.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise BadRequest(f"role: one of {', '.join(ROLES)}")
        try:
            user = store().set_role(name, _role(role))
        except KeyError:
            raise NotFound(f"no one called {name!r}") from None
        except UsersError as exc:
            raise failed(exc) from None
        return {"name": user.name, "role": user.role}

    def remove(name: str) -> dict[str, Any]:
        if name.lower() == OWNER_NAME:
            raise BadRequest("the first owner cannot be removed (change the password with `bambupi set-password`)")
        try:
            if not store().remove(name):
                raise NotFound(f"no one called {name!r}")
        except UsersError as exc:
            raise failed(exc) from None
        ended = auth.sessions.end_user(name)  # at once: a removed person's open pages can do nothing more
        log.info("%s removed %s (%d sessions ended)", caller_origin(), name, ended)
        return {"removed": name, "sessions_ended": ended}

    # -- everyone's own sessions ------------------------------------------------------------------------------------
    def my_sessions() -> dict[str, Any]:
        person = me()
        current = auth.sessions.get(bottle.request.get_cookie(COOKIE))
        return {
            "user": person.name, "role": person.role,
            "sessions": [s.describe(current=s is current) for s in auth.sessions.of(person.name)],
        }

    def end_everywhere() -> dict[str, Any]:
        person = me()
        ended = auth.sessions.end_user(person.name)
        bottle.response.delete_cookie(COOKIE, path="/")
        log.info("%s signed out everywhere (%d sessions)", person.name, ended)
        return {"logged_in": False, "sessions_ended": ended}

    def end_one(session_id: str) -> dict[str, Any]:
        if not auth.sessions.end_one(me().name, session_id):
            raise NotFound("no such session of yours")
        return {"ended": session_id}

    def change_password() -> dict[str, Any]:
        person = me()
        if person.name == OWNER_NAME:
            raise BadRequest("the first owner's password is changed with `bambupi set-password`")
        body = read_json_body() or {}
        current, new = body.get("current"), body.get("password")
        if not isinstance(current, str) or not isinstance(new, str):
            raise BadRequest("current and password: required")
        if auth.check(current, person.name) is None:
            raise Refused("the current password is wrong")
        try:
            store().set_password(person.name, new)
        except KeyError:
            raise LoginRequired("log in first (POST /api/login)") from None
        except UsersError as exc:
            raise failed(exc) from None
        auth.sessions.end_user(person.name)  # the old password's sessions, as the owner's end at a new one
        return start_session_for(auth, person)

    # -- accepting an invitation ------------------------------------------------------------------------------------
    def limited() -> str:
        client = str(bottle.request.environ.get("REMOTE_ADDR", ""))
        if cross_site(bottle.request.get_header("Origin"), bottle.request.get_header("Host")):
            raise Refused("cross-site request refused")
        # Codes are guessed like passwords: the same count per address as the login's.
        wait = auth.limiter.reserve(client)
        if wait > 0:
            seconds = int(wait) + 1
            raise TooManyRequests(f"too many tries; try again in {seconds} s", headers={"Retry-After": str(seconds)})
        return client

    def read_code(body: dict[str, Any] | None) -> str:
        code = body.get("code") if body else None
        if not isinstance(code, str) or not code.strip() or len(code) > 64:
            raise BadRequest("code: required (the invitation's code, or the link the owner sent)")
        return code

    def peek() -> dict[str, Any]:
        body = read_json_body()
        code = read_code(body)
        client = limited()
        found = store().invite_for(code)
        if found is None:
            raise NotFound("this invitation is not valid: it was used, withdrawn or has expired")
        auth.limiter.succeeded(client)
        return {"name": found.name, "role": found.role, "expires_at": found.expires_at}

    def accept() -> dict[str, Any]:
        body = read_json_body()
        code = read_code(body)
        password = body.get("password") if body else None
        if not isinstance(password, str):
            raise BadRequest("password: required")
        client = limited()
        try:
            user = store().accept(code, password)
        except UsersFileError as exc:
            raise ServerError(str(exc)) from None
        except UsersError as exc:
            raise (NotFound(str(exc)) if "not valid" in str(exc) else BadRequest(str(exc))) from None
        auth.limiter.succeeded(client)
        return start_session_for(auth, Person(user.name, user.role))

    expose(app, "GET", "/api/users", overview, Access.OWNER)
    expose(app, "POST", "/api/users/invites", invite, Access.OWNER)
    expose(app, "DELETE", "/api/users/invites/<invite_id>", withdraw, Access.OWNER)
    expose(app, "PATCH", "/api/users/<name>", change, Access.OWNER)
    expose(app, "DELETE", "/api/users/<name>", remove, Access.OWNER)
    expose(app, "GET", "/api/sessions", my_sessions, Access.SIGNED_IN)
    expose(app, "POST", "/api/sessions/end-all", end_everywhere, Access.SIGNED_IN)
    expose(app, "POST", "/api/sessions/<session_id>/end", end_one, Access.SIGNED_IN)
    expose(app, "POST", "/api/password", change_password, Access.SIGNED_IN)
    # Accepting checks its caller itself (rate limit, Origin), as the login does.
    expose(app, "POST", "/api/invites/peek", peek, Access.ANYONE)
    expose(app, "POST", "/api/invites/accept", accept, Access.ANYONE)
    expose(app, "GET", "/users", html_page(USERS_PAGE), Access.OWNER)
    expose(app, "GET", "/sessions", html_page(SESSIONS_PAGE), Access.SIGNED_IN)
    expose(app, "GET", "/invite", html_page(INVITE_PAGE), Access.ANYONE)


def _role(value: str) -> Role:
    for role in ROLES:
        if role == value:
            return role
    raise BadRequest(f"role: one of {', '.join(ROLES)}")
