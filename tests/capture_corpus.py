"""Real printer messages kept under tests/captures/ with their source (see its README)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CAPTURES = Path(__file__).resolve().parent / "captures"


@dataclass(frozen=True)
class Capture:
    name: str
    messages: list[dict[str, Any]]  # in the order they arrived
    source: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.source["model"])


def capture(name: str) -> Capture:
    data = json.loads((CAPTURES / f"{name}.json").read_text(encoding="utf-8"))
    source = tomllib.loads((CAPTURES / f"{name}.source.toml").read_text(encoding="utf-8"))
    for key in ("repository", "path", "model"):
        if key not in source:
            raise ValueError(f"{name}.source.toml: {key} is missing")
    messages = data if isinstance(data, list) else [data]
    return Capture(name, messages, source)


def all_captures() -> list[Capture]:
    return [capture(p.name.removesuffix(".json")) for p in sorted(CAPTURES.glob("*.json"))]
