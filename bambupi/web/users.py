"""The people who may log in besides the owner, their roles, and the owner's invitations: a small file in the data
folder (``users.json``), replaced atomically at every change.

Roles, from most to least: ``owner`` (everything), ``operator`` (printer controls and the plug; no settings, no
users), ``viewer`` (reads, and the camera where ``web.camera_access`` lets viewers see it).

The first owner is not in this file: their password stays ``web.admin_password_hash`` in the config file (where
`bambupi set-password` and the first visit put it), so a box from before users existed keeps its password with
nothing to migrate, and the owner can always log in, even when this file is broken or the disk is full (a login
only reads; sessions live in memory). A broken file is reported and never overwritten: the people in it must not be
lost because one byte was; the owner fixes or removes it over SSH, and the next request reads it again (one stat per
look, as the owner's hash follows the config file).

An invitation's code is shown once; only its SHA-256 is kept (a code is 80 random bits, so a fast hash suffices:
there is nothing to guess from it). It works once and expires.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal, get_args

from bambupi.atomic_file import write_atomically
from bambupi.passwords import hash_password, parse_password_hash, password_problem, verify_password
from bambupi.secret import Secret

log = logging.getLogger("bambupi.web")

Role = Literal["owner", "operator", "viewer"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
RANK: Final[dict[str, int]] = {"viewer": 1, "operator": 2, "owner": 3}
OWNER_NAME: Final = "owner"  # the account of web.admin_password_hash
USERS_FILE_NAME: Final = "users.json"
FORMAT_VERSION: Final = 1
MAX_USERS: Final = 50
MAX_INVITES: Final = 20
INVITE_HOURS: Final = 24.0
MAX_INVITE_HOURS: Final = 24.0 * 14
MAX_FILE_BYTES: Final = 1024 * 1024
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
# Crockford's base32 without the letters that look like digits: a code can be read aloud and typed on a phone.
_CODE_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_GROUPS: Final = 4  # 4 groups of 4 characters: 80 bits
_NOT_READ: Final = (-1, -1, -1)  # no file has this identity: the first look reads it


class UsersError(Exception):
    """A change that cannot be made; the message is safe to show (it names no secret)."""


class UsersFileError(UsersError):
    """The file could not be written (a full disk, a read-only card) or is broken; nothing changed."""


@dataclass(frozen=True)
class Person:
    """Who is logged in: a name and the role they have now."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return RANK[self.role] >= RANK[needed]

    def origin(self, where: str = "the page") -> str:
        """How a command from this person is named in the logs, the MQTT capture and a job's timeline."""
        return f"{self.name} ({where})"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: Secret
    created_at: float  # UTC epoch seconds


@dataclass(frozen=True)
class Invite:
    id: str  # public: names the invitation on the users page (to withdraw it); never the code
    code_sha256: str
    name: str
    role: Role
    created_at: float
    expires_at: float  # UTC epoch seconds


def name_problem(name: str) -> str | None:
    if not _NAME.fullmatch(name):
        return "1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"
    if name.lower() == OWNER_NAME:
        return f"{OWNER_NAME!r} is the first owner's name"
    return None


def new_code() -> str:
    chars = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(4 * _CODE_GROUPS))
    return "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


def normalise_code(code: str) -> str:
    """What a person typed, as the code was made: upper case, no spaces or dashes, O read as 0, I and L as 1."""
    plain = re.sub(r"[\s-]", "", code.upper()).replace("O", "0").replace("I", "1").replace("L", "1")
    return "-".join(plain[i : i + 4] for i in range(0, len(plain), 4))


def code_digest(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


class UserStore:
    """The users and invitations of ``path``, held in memory and written through on every change.

    Thread-safe (the web's worker threads call it). A change is written first and only then made in memory: when
    the write fails the store is as it was and the caller gets :class:`UsersFileError`.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}  # by lower-cased name
        self._invites: dict[str, Invite] = {}  # by id
        self.problem: str | None = None  # why the file could not be read (then it is never written)
        self._seen: tuple[int, int, int] | None = _NOT_READ  # the file as last read or written (see _follow)
        self._follow()

    # -- reading ---------------------------------------------------------------------------------------------
    def _follow(self) -> None:
        """Read the file again when it changed since it was last read or written (one stat): the owner fixing
        or removing it over SSH needs no restart."""
        seen = _identity(self.path)
        with self._lock:
            if seen == self._seen:
                return
        users, invites, problem = _read(self.path)
        with self._lock:
            self._seen = seen
            self._users = {u.name.lower(): u for u in users}
            self._invites = {i.id: i for i in invites}
            changed, self.problem = problem != self.problem, problem
        if changed and problem is not None:
            log.error("%s", problem)
        elif changed:
            log.info("%s can be read again", self.path)

    def user(self, name: str) -> User | None:
        self._follow()
        with self._lock:
            return self._users.get(name.lower())

    def users(self) -> list[User]:
        self._follow()
        with self._lock:
            return sorted(self._users.values(), key=lambda u: u.created_at)

    def invites(self) -> list[Invite]:
        self._follow()
        now = self._clock()
        with self._lock:
            return sorted((i for i in self._invites.values() if i.expires_at > now), key=lambda i: i.created_at)

    def check(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs. An unknown name costs the same scrypt as a known one: the time
        of an answer does not tell which names exist."""
        user = self.user(name)
        stored = user.password_hash.reveal() if user is not None else _dummy_hash()
        ok = verify_password(password, stored)
        return user if ok and user is not None else None

    def invite_for(self, code: str) -> Invite | None:
        """The invitation ``code`` opens, if it is still open (not used, not expired, not withdrawn)."""
        self._follow()
        digest = code_digest(code)
        now = self._clock()
        with self._lock:
            for invite in self._invites.values():
                if hmac.compare_digest(invite.code_sha256, digest) and invite.expires_at > now:
                    return invite
        return None

    # -- changing --------------------------------------------------------------------------------------------
    def invite(self, name: str, role: Role, *, hours: float = INVITE_HOURS) -> tuple[Invite, str]:
        """A new invitation for ``name`` as ``role``; returns it and its code (shown once, never kept)."""
        problem = name_problem(name)
        if problem is not None:
            raise UsersError(f"name: {problem}")
        if role not in ROLES:
            raise UsersError(f"role: one of {', '.join(ROLES)}")
        if not 0 < hours <= MAX_INVITE_HOURS:
            raise UsersError(f"hours: between 0 and {MAX_INVITE_HOURS:g}")
        self._follow()  # a hand edit since the last look is not undone
        code = new_code()
        now = self._clock()
        invite = Invite(secrets.token_hex(6), code_digest(code), name, role, now, now + hours * 3600)
        with self._lock:
            invites = {k: v for k, v in self._invites.items() if v.expires_at > now}
            if name.lower() in self._users:
                raise UsersError(f"name: {name} has an account already")
            if any(i.name.lower() == name.lower() for i in invites.values()):
                raise UsersError(f"name: {name} is invited already (withdraw that invitation first)")
            if len(invites) >= MAX_INVITES:
                raise UsersError(f"at most {MAX_INVITES} open invitations")
            invites[invite.id] = invite
            self._write(self._users, invites)
        log.info("invitation for %s as %s (expires in %g h)", name, role, hours)
        return invite, code

    def withdraw(self, invite_id: str) -> bool:
        self._follow()
        with self._lock:
            if invite_id not in self._invites:
                return False
            invites = dict(self._invites)
            del invites[invite_id]
            self._write(self._users, invites)
        return True

    def accept(self, code: str, password: str) -> User:
        """Use the invitation ``code`` opens: its person's account with ``password``. Works once."""
        problem = password_problem(password)
        if problem is not None:
            raise UsersError(f"password: {problem}")
        password_hash = hash_password(password)  # before the lock: scrypt takes a while on a Pi
        self._follow()
        digest = code_digest(code)
        now = self._clock()
        with self._lock:
            # Looked up again under the lock: of two acceptances at once, one gets the account.
            invite = next(
                (i for i in self._invites.values()
                 if hmac.compare_digest(i.code_sha256, digest) and i.expires_at > now), None,
            )
            if invite is None:
                raise UsersError("this invitation is not valid: it was used, withdrawn or has expired")
            if invite.name.lower() in self._users:
                raise UsersError(f"{invite.name} has an account already")
            if len(self._users) >= MAX_USERS:
                raise UsersError(f"at most {MAX_USERS} people")
            user = User(invite.name, invite.role, Secret(password_hash), now)
            users = {**self._users, user.name.lower(): user}
            invites = {k: v for k, v in self._invites.items() if k != invite.id and v.expires_at > now}
            self._write(users, invites)
        log.info("%s accepted the invitation (%s)", user.name, user.role)
        return user

    def set_role(self, name: str, role: Role) -> User:
        if role not in ROLES:
            raise UsersError(f"role: one of {', '.join(ROLES)}")
        self._follow()
        with self._lock:
            user = self._users.get(name.lower())
            if user is None:
                raise KeyError(name)
            changed = replace(user, role=role)
            self._write({**self._users, name.lower(): changed}, self._invites)
        log.info("%s is now %s", user.name, role)
        return changed

    def set_password(self, name: str, password: str) -> None:
        problem = password_problem(password)
        if problem is not None:
            raise UsersError(f"password: {problem}")
        password_hash = hash_password(password)
        self._follow()
        with self._lock:
            user = self._users.get(name.lower())
            if user is None:
                raise KeyError(name)
            self._write({**self._users, name.lower(): replace(user, password_hash=Secret(password_hash))},
                        self._invites)
        log.info("%s chose a new password", user.name)

    def remove(self, name: str) -> bool:
        self._follow()
        with self._lock:
            if name.lower() not in self._users:
                return False
            users = {k: v for k, v in self._users.items() if k != name.lower()}
            self._write(users, self._invites)
        log.info("%s was removed", name)
        return True

    def _write(self, users: dict[str, User], invites: dict[str, Invite]) -> None:
        """Write the new contents, then hold them (the caller holds the lock)."""
        if self.problem is not None:
            raise UsersFileError(self.problem)
        document = {
            "version": FORMAT_VERSION,
            "users": [
                {"name": u.name, "role": u.role, "password_hash": u.password_hash.reveal(), "created_at": u.created_at}
                for u in users.values()
            ],
            "invites": [
                {"id": i.id, "code_sha256": i.code_sha256, "name": i.name, "role": i.role,
                 "created_at": i.created_at, "expires_at": i.expires_at}
                for i in invites.values()
            ],
        }
        try:
            write_atomically(self.path, json.dumps(document, indent=1).encode())
        except OSError as exc:
            log.error("could not write %s: %s", self.path, exc.strerror or exc)
            raise UsersFileError(f"could not save to {self.path} ({exc.strerror or type(exc).__name__})") from None
        self._users, self._invites = users, invites
        self._seen = _identity(self.path)


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What changes whenever the file is rewritten (an atomic rename gives it a new inode)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _read(path: Path) -> tuple[list[User], list[Invite], str | None]:
    """The users and invitations in ``path`` (none when it does not exist), or why it cannot be read."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return [], [], None
    except OSError as exc:
        return [], [], _broken(path, exc.strerror or type(exc).__name__)
    try:
        if len(raw) > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
        users, invites = _parse(json.loads(raw))
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        why = str(exc) if isinstance(exc, ValueError) and not isinstance(exc, json.JSONDecodeError) else ""
        return [], [], _broken(path, why or "not a users file bambupi wrote")
    return users, invites, None


def _broken(path: Path, why: str) -> str:
    return f"{path} cannot be read ({why}): only the owner can log in; fix or remove the file"


def _parse(document: Any) -> tuple[list[User], list[Invite]]:
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise ValueError(f"not a version {FORMAT_VERSION} users file")
    users = []
    for entry in document.get("users") or []:
        name, role = str(entry["name"]), entry["role"]
        if name_problem(name) is not None or role not in ROLES:
            raise ValueError(f"a user's name or role is not valid ({name[:32]!r})")
        _check_hash(str(entry["password_hash"]))
        users.append(User(name, role, Secret(str(entry["password_hash"])), float(entry["created_at"])))
    invites = []
    for entry in document.get("invites") or []:
        role = entry["role"]
        if role not in ROLES:
            raise ValueError("an invitation's role is not valid")
        invites.append(Invite(
            str(entry["id"]), str(entry["code_sha256"]), str(entry["name"]), role, float(entry["created_at"]),
            float(entry["expires_at"]),
        ))
    return users, invites


def _check_hash(text: str) -> None:
    try:
        parse_password_hash(text)
    except ValueError:
        raise ValueError("a user's password hash is not one bambupi wrote") from None


@functools.cache
def _dummy_hash() -> str:
    """A hash of no one's password, checked against when a name is unknown (the same cost as a real check)."""
    return hash_password(secrets.token_urlsafe(16))
