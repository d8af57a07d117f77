"""A local stand-in for Bambu's HMS service (``GET /query.php?lang=..&d=..``), serving the real texts of
tests/fixtures/hms_service.json (English, German and Japanese) on 127.0.0.1, and able to misbehave on demand."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.plug_servers import FakePlugServer, Request

FIXTURE = Path(__file__).parent / "fixtures" / "hms_service.json"


def service_data(language: str, *, version: int = 1) -> dict[str, Any]:
    """The query.php answer for ``language`` built from the fixture."""
    data = json.loads(FIXTURE.read_text("utf-8"))
    return {
        "result": 0,
        "ver": version,
        "data": {part: {language: by_language[language]} for part, by_language in data.items()},
    }


@dataclass
class HmsService:
    """What the stand-in answers: the fixture's table, or ``body`` (bytes, any status) when set."""

    version: int = 1
    body: bytes | None = None
    status: int = 200
    queries: list[dict[str, str]] = field(default_factory=list)

    def __call__(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        self.queries.append(request.query)
        if request.path != "/query.php":
            return 404, {}, b"{}"
        if self.body is not None:
            return self.status, {}, self.body
        query = request.query
        if query.get("v") == str(self.version):
            return 200, {}, json.dumps({"result": 201}).encode()
        return 200, {}, json.dumps(service_data(query.get("lang", "en"), version=self.version)).encode()


def stand_in(service: HmsService) -> FakePlugServer:
    return FakePlugServer(service)
