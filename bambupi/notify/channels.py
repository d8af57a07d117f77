"""How each service wants a message: pure builders from (channel, message, image) to an HTTP request.

The shapes follow each service's public API: ntfy (JSON publish; a PUT with the image as body when there is a
snapshot), Pushover (``/1/messages.json`` form, ``attachment`` file), Telegram (``sendMessage`` /
``sendPhoto``), Discord webhooks (JSON, or ``payload_json`` + ``files[0]``), and a generic JSON webhook signed
with HMAC-SHA256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from bambupi.config import NotifyConfig
from bambupi.notify.messages import Message

NTFY_DEFAULT: Final = "https://ntfy.sh"
PUSHOVER_DEFAULT: Final = "https://api.pushover.net"
TELEGRAM_DEFAULT: Final = "https://api.telegram.org"
SIGNATURE_HEADER: Final = "X-Bambupi-Signature"
NTFY_PRIORITY: Final = {"low": 2, "default": 3, "high": 4, "urgent": 5}
PUSHOVER_PRIORITY: Final = {"low": -1, "default": 0, "high": 1, "urgent": 1}
FILE_NAME: Final = "snapshot.jpg"


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None
    content: bytes | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None


def _rfc2047(text: str) -> str:
    """HTTP headers are Latin-1; ntfy reads RFC 2047 encoded words for anything else (emoji, accents)."""
    try:
        text.encode("ascii")
        return text
    except UnicodeEncodeError:
        return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def webhook_payload(message: Message) -> dict[str, Any]:
    """The documented JSON body of the generic webhook."""
    return {
        "event": message.kind,
        "printer": message.printer,
        "title": message.title,
        "body": message.body,
        "priority": message.priority,
        "url": message.url,
        "tags": list(message.tags),
    }


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def build_request(channel: NotifyConfig, message: Message, image: bytes | None) -> Request:
    kind = channel.kind
    token = channel.token.reveal() if channel.token else None
    if kind == "ntfy":
        base = channel.url or NTFY_DEFAULT
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        if image is None:
            body: dict[str, Any] = {
                "topic": channel.topic,
                "title": message.title,
                "message": message.body or message.title,
                "priority": NTFY_PRIORITY[message.priority],
                "tags": list(message.tags),
            }
            if message.url:
                body["click"] = message.url
            return Request("POST", base + "/", headers=auth, json=body)
        headers = {
            **auth,
            "Filename": FILE_NAME,
            "X-Title": _rfc2047(message.title),
            "X-Message": _rfc2047(message.body or message.title),
            "X-Priority": str(NTFY_PRIORITY[message.priority]),
            "X-Tags": ",".join(message.tags),
        }
        if message.url:
            headers["X-Click"] = message.url
        return Request("PUT", f"{base}/{channel.topic}", headers=headers, content=image)
    if kind == "pushover":
        form = {
            "token": token or "",
            "user": channel.user_key.reveal() if channel.user_key else "",
            "title": message.title,
            "message": message.body or message.title,
            "priority": str(PUSHOVER_PRIORITY[message.priority]),
        }
        if channel.sound:
            form["sound"] = channel.sound
        if message.url:
            form["url"] = message.url
        files = {"attachment": (FILE_NAME, image, "image/jpeg")} if image is not None else None
        return Request("POST", f"{channel.api_url or PUSHOVER_DEFAULT}/1/messages.json", data=form, files=files)
    if kind == "telegram":
        base = f"{channel.api_url or TELEGRAM_DEFAULT}/bot{token}"
        if image is None:
            return Request(
                "POST", f"{base}/sendMessage",
                json={"chat_id": channel.chat_id, "text": message.text(), "disable_web_page_preview": True},
            )
        return Request(
            "POST", f"{base}/sendPhoto", data={"chat_id": str(channel.chat_id), "caption": message.text()[:1024]},
            files={"photo": (FILE_NAME, image, "image/jpeg")},
        )
    if kind == "discord":
        payload = {"content": message.text()[:2000]}
        if image is None:
            return Request("POST", str(channel.url), json=payload)
        return Request(
            "POST", str(channel.url), data={"payload_json": json.dumps(payload)},
            files={"files[0]": (FILE_NAME, image, "image/jpeg")},
        )
    if kind == "webhook":
        raw = json.dumps(webhook_payload(message), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if channel.secret:
            headers[SIGNATURE_HEADER] = sign(channel.secret.reveal(), raw)
        return Request("POST", str(channel.url), headers=headers, content=raw)
    raise ValueError(f"unknown channel kind {kind!r}")


def secrets_of(channel: NotifyConfig) -> list[str]:
    """Everything of the channel that must never show in a log line or error (Discord's URL holds its token).

    A secret URL is masked in every part a message may quote on its own: the whole URL, its path and query (a
    request line), and the path's last segment (Discord's key) or its query (a webhook's ``?key=``)."""
    values = [s.reveal() for s in (channel.token, channel.user_key, channel.secret) if s]
    if channel.kind in ("discord", "webhook") and channel.url:
        url = urlsplit(channel.url)
        key = url.path.rstrip("/").rsplit("/", 1)[-1]
        values += [channel.url, url.path + (f"?{url.query}" if url.query else ""), url.query, url.password or ""]
        if len(key) >= 8:  # a key, not a word like "hook" that the rest of the text may need
            values.append(key)
    return [v for v in values if v and v != "/"]
