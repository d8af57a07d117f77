"""Real local HTTP servers speaking the API shapes of ntfy, Pushover, Telegram, Discord and a webhook receiver.

They run on the project's own front door (real sockets, real HTTP) and record every request they get.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import bottle

from bambupi.notify.channels import SIGNATURE_HEADER, sign

TELEGRAM_TOKEN = "123456:telegram-bot-token-secret"
PUSHOVER_TOKEN = "pushover-app-token-secret"
PUSHOVER_USER = "pushover-user-key-secret"
NTFY_TOKEN = "tk_ntfy_token_secret"
DISCORD_PATH = "/api/webhooks/42/discord-webhook-secret"
WEBHOOK_SECRET = "webhook-hmac-secret"


@dataclass
class Recorded:
    service: str
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    body: bytes = b""


class FakeServices:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.fail_next: dict[str, list[int]] = {}  # service -> statuses to answer before succeeding
        self.delay_s = 0.0
        # Every service answers this status with a body repeating the request line and body, as some proxies' and
        # services' error pages do: whatever key is in the URL or the form comes back in the answer.
        self.echo_status: int | None = None
        # Webhook receivers at /hooks/<name>, each with its own HMAC secret: a request signed otherwise gets 401.
        self.hook_secrets: dict[str, str] = {}
        self.app = bottle.Bottle()
        app = self.app
        app.route("/", "POST", lambda: self._ntfy_json())
        app.route("/<topic>", "PUT", lambda topic: self._ntfy_put(topic))
        app.route("/1/messages.json", "POST", lambda: self._pushover())
        app.route("/bot<token>/<method>", "POST", lambda token, method: self._telegram(token, method))
        app.route("/api/webhooks/<hook>/<key>", "POST", lambda hook, key: self._discord(hook, key))
        app.route("/hook", "POST", lambda: self._webhook())
        app.route("/hooks/<name>", "POST", lambda name: self._named_webhook(name))

    def of(self, service: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.service == service]

    def _record(self, service: str) -> Recorded:
        request = bottle.request
        body = request.body.read()
        request.body.seek(0)
        recorded = Recorded(service, request.method, request.path, {k: v for k, v in request.headers.items()},
                            body=body)
        content_type = request.content_type or ""
        if content_type.startswith("application/json"):
            recorded.json = json.loads(body)
        elif content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            recorded.form = {k: request.forms.getunicode(k) for k in request.forms}
            recorded.files = {k: request.files[k].file.read() for k in request.files}
        with self.lock:
            self.requests.append(recorded)
        return recorded

    def _answer(self, service: str, ok: Any) -> Any:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.echo_status is not None:
            bottle.response.status = self.echo_status
            request = bottle.request
            return {"error": "refused", "request": f"{request.method} {request.fullpath}",
                    "body": request.body.read().decode("utf-8", "replace")}
        with self.lock:
            pending = self.fail_next.get(service)
            status = pending.pop(0) if pending else None
        if status is not None:
            bottle.response.status = status
            return {"error": f"simulated {status}"}
        return ok

    def _ntfy_json(self) -> Any:
        self._record("ntfy")
        if bottle.request.get_header("Authorization") != f"Bearer {NTFY_TOKEN}":
            bottle.response.status = 403
            return {"code": 40301, "error": "forbidden"}
        return self._answer("ntfy", {"id": "abc", "event": "message"})

    def _ntfy_put(self, topic: str) -> Any:
        self._record("ntfy")
        return self._answer("ntfy", {"id": "def", "event": "message", "attachment": {"name": "snapshot.jpg"}})

    def _pushover(self) -> Any:
        r = self._record("pushover")
        if r.form.get("token") != PUSHOVER_TOKEN or r.form.get("user") != PUSHOVER_USER:
            bottle.response.status = 400
            return {"status": 0, "errors": ["application token is invalid"]}
        return self._answer("pushover", {"status": 1, "request": "x"})

    def _telegram(self, token: str, method: str) -> Any:
        self._record("telegram")
        if token != TELEGRAM_TOKEN:
            bottle.response.status = 401
            return {"ok": False, "error_code": 401, "description": "Unauthorized"}
        return self._answer("telegram", {"ok": True, "result": {"message_id": 1}})

    def _discord(self, hook: str, key: str) -> Any:
        self._record("discord")
        bottle.response.status = 204
        return self._answer("discord", "")

    def _webhook(self) -> Any:
        r = self._record("webhook")
        if r.headers.get(SIGNATURE_HEADER) != sign(WEBHOOK_SECRET, r.body):
            bottle.response.status = 401
            return {"error": "bad signature"}
        return self._answer("webhook", {"ok": True})

    def _named_webhook(self, name: str) -> Any:
        r = self._record(f"hooks/{name}")
        secret = self.hook_secrets.get(name)
        if secret is None or r.headers.get(SIGNATURE_HEADER) != sign(secret, r.body):
            bottle.response.status = 401
            return {"error": "bad signature"}
        return self._answer(f"hooks/{name}", {"ok": True})
