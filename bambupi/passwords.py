"""The admin password: a salted scrypt hash (stdlib ``hashlib.scrypt``), as stored in ``web.admin_password_hash``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

# scrypt cost: ~50 ms and 16 MiB on a Pi 3, ample against guessing over a rate-limited LAN form.
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
MIN_PASSWORD_LENGTH: Final = 8
MAX_PASSWORD_LENGTH: Final = 1024


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` (base64), the form stored in ``web.admin_password_hash``."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def parse_password_hash(text: str) -> tuple[int, int, int, bytes, bytes]:
    """Split a stored hash; ValueError (naming no part of it) when it is not one we wrote."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a bambupi password hash (set it with `bambupi set-password`)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise ValueError("malformed password hash (set it again with `bambupi set-password`)") from None
    if n < 2 or n & (n - 1) or not (1 <= r <= 64 and 1 <= p <= 16) or len(salt) < 8 or len(digest) < 16:
        raise ValueError("password hash parameters out of range (set it again with `bambupi set-password`)")
    return n, r, p, salt, digest


def verify_password(password: str, stored: str) -> bool:
    try:
        n, r, p, salt, digest = parse_password_hash(stored)
    except ValueError:
        return False
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=256 * 1024 * 1024
    )
    return hmac.compare_digest(candidate, digest)


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    return None
