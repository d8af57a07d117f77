"""A string that never shows itself in logs, reprs or exception messages."""

from __future__ import annotations

import json
from typing import Final

MASK: Final = "********"


class Secret:
    """Holds a secret value (access code, token, password).

    ``str()``, ``repr()`` and f-strings give the mask, so a secret that ends up in a log line or
    an exception message by accident stays hidden. Call :meth:`reveal` where the real value is needed.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK


def redact(text: str, *secrets: Secret | str) -> str:
    """Replace every occurrence of each secret's value in ``text`` with the mask.

    Also the value as error messages quote it: escaped the way ``repr()`` of a str or of its UTF-8 bytes, or JSON,
    writes it (h11 quotes a bad header value as ``b'Bearer abc\\ndef'``), so a secret with an odd character in it
    is masked too.
    """
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if not value:
            continue
        for form in sorted(_quoted_forms(value), key=len, reverse=True):
            text = text.replace(form, MASK)
    return text


def _quoted_forms(value: str) -> set[str]:
    return {
        value,
        repr(value)[1:-1],
        repr(value.encode("utf-8", "surrogatepass"))[2:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
