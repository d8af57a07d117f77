"""Logins: the owner's password (salted scrypt) and the other people's (bambupi.web.users), session cookies, CSRF
tokens, a login rate limit.

Watching stays open to the LAN; anything that changes the box or the printer needs a session of a role that may.
Sessions live in memory (a restart logs everyone out, which on a box that restarts rarely is a fair price for no
session store).
All of this runs in the WSGI worker threads, so the shared tables are guarded by a lock.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from bambupi.config.file import stored_password_hash
from bambupi.passwords import verify_password
from bambupi.secret import Secret
from bambupi.web.users import OWNER_NAME, Person, UserStore

log = logging.getLogger("bambupi.web")

COOKIE: Final = "bambupi_session"
CSRF_HEADER: Final = "X-CSRF-Token"


def cross_site(origin: str | None, host: str | None) -> bool:
    """True when a browser says the request comes from another site's page (its Origin is not this box).

    Browsers send Origin with every POST and every WebSocket handshake; tools like curl send none (and carry no
    visitor's cookies or network position), so a missing Origin is not refused here. The box serves plain HTTP
    only, so its own pages' Origin is ``http://<Host>``: an https page of the same name is another site.
    """
    if not origin:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:  # "http://[": not an origin any browser sends
        return True
    return parts.scheme != "http" or parts.netloc != host


def names_this_box(host: str | None, hostname: str | None = None, *, listen_host: str = "") -> bool:
    """Whether a Host header names the box in a way DNS rebinding cannot fake: an IP address, ``localhost``, an
    mDNS ``.local`` name (avahi may have renamed the box ``bambupi-2.local``; mDNS names never come from a
    public DNS server), the box's own host name (``hostname``, default the system's) or the name it was told to
    listen on. A page on attacker.example whose name was re-pointed at the box sends ``Host: attacker.example``;
    its Origin then matches too, so only the Host tells it apart."""
    if not host:
        return False
    if hostname is None:
        hostname = socket.gethostname()  # per request: the first boot may rename the box
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    name = name.rstrip(".").lower()
    own = {"localhost", hostname.lower(), listen_host.rstrip(".").lower()} - {""}
    return name in own or name.endswith(".local")


# Named, not ``ip.is_private``: that also counts ranges reachable from the internet as "private" (Teredo tunnels,
# 2001::/32, inside 2001::/23), and its list changes between Python releases.
_LAN_NETWORKS: Final = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
        "127.0.0.0/8", "169.254.0.0/16",  # loopback, link-local
        "::1/128", "fc00::/7", "fe80::/10",  # loopback, unique local, link-local
    )
)


def is_lan_address(address: str) -> bool:
    """Private (RFC 1918, IPv6 unique local), loopback and link-local addresses: where a first-visit password may
    be set from."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in _LAN_NETWORKS)


@dataclass
class Session:
    token: str
    csrf: str
    expires_at: float  # monotonic
    user: str = OWNER_NAME
    id: str = field(default_factory=lambda: secrets.token_hex(6))  # public: names it on "my sessions"
    started_at: float = field(default_factory=time.time)  # UTC epoch seconds, shown only
    last_seen_at: float = field(default_factory=time.time)
    client: str = ""  # the address it logged in from
    agent: str = ""  # the browser's User-Agent, cut short

    def describe(self, *, current: bool) -> dict[str, Any]:
        return {
            "id": self.id, "started_at": self.started_at, "last_seen_at": self.last_seen_at, "client": self.client,
            "agent": self.agent, "current": current,
        }


class Sessions:
    """Logins held in memory. Their lifetime runs on the monotonic clock: a Pi has no battery clock and NTP steps it
    at boot, which must neither end a login at once nor stretch it."""

    def __init__(
        self, *, lifetime_s: float, clock: Callable[[], float] = time.monotonic, limit: int = 64,
        per_user: int = 16, before_lookup: Callable[[], None] | None = None,
    ) -> None:
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._limit = limit
        self._per_user = per_user
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._before_lookup = before_lookup

    def create(self, user: str = OWNER_NAME, *, client: str = "", agent: str = "") -> Session:
        now = self._clock()
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + self.lifetime_s, user=user, client=client,
            agent=agent[:120],
        )
        with self._lock:
            self._drop_expired(now)
            mine = [s for s in self._sessions.values() if s.user.lower() == user.lower()]
            if len(mine) >= self._per_user:  # one person's logins push out their own oldest, never another's
                del self._sessions[min(mine, key=lambda s: s.expires_at).token]
            if len(self._sessions) >= self._limit:  # oldest first: a flood of logins cannot grow memory
                oldest = min(self._sessions.values(), key=lambda s: s.expires_at)
                del self._sessions[oldest.token]
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        if self._before_lookup is not None:
            self._before_lookup()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if session.expires_at <= self._clock():
                del self._sessions[token]
                return None
            session.last_seen_at = time.time()
            return session

    def of(self, user: str) -> list[Session]:
        """``user``'s sessions, oldest first."""
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            mine = [s for s in self._sessions.values() if s.user.lower() == user.lower()]
        return sorted(mine, key=lambda s: s.started_at)

    def end(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def end_one(self, user: str, session_id: str) -> bool:
        """End ``user``'s session ``session_id`` (never someone else's); False when there is none."""
        with self._lock:
            for token, session in self._sessions.items():
                if session.id == session_id and session.user.lower() == user.lower():
                    del self._sessions[token]
                    return True
        return False

    def end_user(self, user: str) -> int:
        """End every session of ``user`` (signing out everywhere, or a removed person); returns how many."""
        with self._lock:
            tokens = [t for t, s in self._sessions.items() if s.user.lower() == user.lower()]
            for token in tokens:
                del self._sessions[token]
        return len(tokens)

    def end_all(self) -> None:
        with self._lock:
            self._sessions.clear()

    def _drop_expired(self, now: float) -> None:
        for token in [t for t, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[token]


class LoginLimiter:
    """At most ``attempts`` logins that did not succeed per client address in any ``window_s``, and at most
    ``ceiling`` from all addresses together (a scan from many addresses, which a per-address count cannot see).

    An attempt is counted before its password is checked (:meth:`reserve`): parallel requests cannot all pass the
    check before the first of them is known to be wrong. A right password takes its address's count back
    (:meth:`succeeded`). Only attempts inside the window are kept, so the table never holds more than ``ceiling``.
    """

    def __init__(
        self, *, attempts: int = 5, window_s: float = 60.0, ceiling: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.attempts = attempts
        self.window_s = window_s
        self.ceiling = ceiling
        self._clock = clock
        self._by_client: dict[str, deque[float]] = {}
        self._all: deque[tuple[float, str]] = deque()  # every counted attempt, oldest first
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0 = now); counts nothing."""
        with self._lock:
            return self._wait(client, self._clock())

    def reserve(self, client: str) -> float:
        """Count an attempt by ``client`` now and return 0, or, when it may not try, the seconds until it may
        (and count nothing)."""
        now = self._clock()
        with self._lock:
            wait = self._wait(client, now)
            if wait == 0:
                self._by_client.setdefault(client, deque()).append(now)
                self._all.append((now, client))
            return wait

    def succeeded(self, client: str) -> None:
        with self._lock:
            if self._by_client.pop(client, None) is not None:
                self._all = deque(entry for entry in self._all if entry[1] != client)

    def tracked(self) -> int:
        """How many addresses have attempts in the window."""
        with self._lock:
            self._expire(self._clock())
            return len(self._by_client)

    def _wait(self, client: str, now: float) -> float:
        self._expire(now)
        mine = self._by_client.get(client)
        if mine is not None and len(mine) >= self.attempts:
            return mine[0] + self.window_s - now
        if len(self._all) >= self.ceiling:
            return self._all[0][0] + self.window_s - now
        return 0.0

    def _expire(self, now: float) -> None:
        while self._all and self._all[0][0] <= now - self.window_s:
            _, client = self._all.popleft()
            mine = self._by_client[client]
            mine.popleft()  # the same attempt: each address's attempts are in time order, as in _all
            if not mine:
                del self._by_client[client]


class Auth:
    """The owner's password (hash), the other people (:class:`UserStore`) and the sessions; the web routes and
    `bambupi set-password` use this.

    With ``config_path`` the owner's hash follows the file: `bambupi set-password` writes it there while the
    service runs, and the next login or session check uses the new one and ends the owner's sessions (a password is
    often changed because someone else knows it). A file with no usable hash (broken by hand) keeps the one in use:
    it must not turn a claimed box into one any visitor can claim.
    """

    def __init__(
        self, password_hash: Secret | None, *, session_hours: float = 24 * 7, config_path: Path | None = None,
        users: UserStore | None = None,
    ) -> None:
        self._hash = password_hash
        self._lock = threading.Lock()
        self._config_path = config_path
        self._file_seen = _file_identity(config_path)
        self.users = users
        self.sessions = Sessions(lifetime_s=session_hours * 3600, before_lookup=self._follow_file)
        self.limiter = LoginLimiter()

    @property
    def password_set(self) -> bool:
        self._follow_file()
        with self._lock:
            return self._hash is not None and bool(self._hash)

    def check(self, password: str, name: str = OWNER_NAME) -> Person | None:
        """Who ``name`` with ``password`` is, or None. The owner's password is the config file's: it works
        whatever state the users file is in."""
        if not name or name.lower() == OWNER_NAME:
            self._follow_file()
            with self._lock:
                stored = self._hash
            ok = stored is not None and verify_password(password, stored.reveal())
            return Person(OWNER_NAME, "owner") if ok else None
        if self.users is None:
            return None
        user = self.users.check(name, password)
        return None if user is None else Person(user.name, user.role)

    def person(self, session: Session | None) -> Person | None:
        """Who holds ``session`` now, with the role they have now; a session of a removed person ends here."""
        if session is None:
            return None
        if session.user == OWNER_NAME:
            return Person(OWNER_NAME, "owner")
        user = self.users.user(session.user) if self.users is not None else None
        if user is None:
            self.sessions.end_user(session.user)
            return None
        return Person(user.name, user.role)

    def set_hash(self, password_hash: Secret) -> None:
        with self._lock:
            self._hash = password_hash
        self.sessions.end_user(OWNER_NAME)

    def _follow_file(self) -> None:
        """Take the hash from the config file when the file changed since it was last looked at (one stat)."""
        if self._config_path is None:
            return
        seen = _file_identity(self._config_path)
        with self._lock:
            if seen == self._file_seen:
                return
            self._file_seen = seen
        stored = stored_password_hash(self._config_path)
        with self._lock:
            if stored is None or (self._hash is not None and self._hash.reveal() == stored):
                return
        self.set_hash(Secret(stored))
        log.info("the owner's password changed in %s: using the new one; the owner's sessions ended", self._config_path)


def _file_identity(path: Path | None) -> tuple[int, int, int] | None:
    """What changes whenever the file is rewritten: the settings' atomic rename gives it a new inode."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
