"""A stand-in for a Spoolman server (github.com/Donkie/Spoolman): its REST API's shapes for vendors, filaments and
spools (``/api/v1/vendor``, ``/api/v1/filament``, ``/api/v1/spool``, ``PATCH /api/v1/spool/<id>``, ``PUT
/api/v1/spool/<id>/use``), served over real HTTP by tests.plug_servers.FakePlugServer, which also fails on demand
(``fail_with``, ``malformed``, ``delay_s``, ``unplug``). ``huge`` answers a body far larger than any real one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.plug_servers import Request, _json

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Spoolman:
    vendors: dict[int, dict[str, Any]] = field(default_factory=dict)
    filaments: dict[int, dict[str, Any]] = field(default_factory=dict)
    spools: dict[int, dict[str, Any]] = field(default_factory=dict)
    huge: bool = False
    _next: int = 1

    def _new_id(self) -> int:
        self._next += 1
        return self._next - 1

    def __call__(self, r: Request) -> Answer:
        if self.huge:
            return 200, {}, b"[" + b'{"id": 1},' * 500_000 + b'{"id": 1}]'
        body = json.loads(r.body) if r.body else {}
        parts = r.path.strip("/").split("/")  # api, v1, kind[, id[, use]]
        if parts[:2] != ["api", "v1"] or len(parts) < 3:
            return _json({"message": "not found"}, 404)
        kind, rest = parts[2], parts[3:]
        table = {"vendor": self.vendors, "filament": self.filaments, "spool": self.spools}.get(kind)
        if table is None:
            return _json({"message": "not found"}, 404)
        if not rest and r.method == "GET":
            return _json([self._full(kind, item) for item in table.values() if self._matches(kind, item, r.query)])
        if not rest and r.method == "POST":
            if kind == "filament" and ("density" not in body or "diameter" not in body):
                return _json({"detail": [{"msg": "field required"}]}, 422)
            if kind == "spool" and body.get("filament_id") not in self.filaments:
                return _json({"message": "no such filament"}, 404)
            item = {**body, "id": self._new_id()}
            if kind == "spool":
                item.setdefault("used_weight", 0.0)
            table[item["id"]] = item
            return _json(self._full(kind, item))
        item_id = int(rest[0]) if rest[0].isdigit() else -1
        if item_id not in table:
            return _json({"message": f"{kind} {item_id} not found"}, 404)
        item = table[item_id]
        if len(rest) == 1 and r.method == "PATCH":
            item.update(body)
            return _json(self._full(kind, item))
        if rest[1:] == ["use"] and r.method == "PUT" and kind == "spool":
            item["remaining_weight"] = max(0.0, item.get("remaining_weight", 0.0) - body["use_weight"])
            item["used_weight"] = item.get("used_weight", 0.0) + body["use_weight"]
            return _json(self._full(kind, item))
        if len(rest) == 1 and r.method == "DELETE":
            del table[item_id]
            return _json({"message": "Success!"})
        return _json({"message": "method not allowed"}, 405)

    def _matches(self, kind: str, item: dict[str, Any], query: dict[str, str]) -> bool:
        if kind == "vendor" and "name" in query:
            return query["name"].lower() in str(item.get("name", "")).lower()  # Spoolman: partial, case-insensitive
        if kind == "filament":
            if "material" in query and query["material"].lower() not in str(item.get("material", "")).lower():
                return False
            if "vendor.id" in query and str(item.get("vendor_id")) != query["vendor.id"]:
                return False
        return True

    def _full(self, kind: str, item: dict[str, Any]) -> dict[str, Any]:
        """As Spoolman answers: a filament names its vendor object, a spool its filament object."""
        if kind == "filament" and item.get("vendor_id") in self.vendors:
            return {**item, "vendor": self.vendors[item["vendor_id"]]}
        if kind == "spool":
            return {**item, "filament": self._full("filament", self.filaments[item["filament_id"]])}
        return item
