"""What is wrong with a config file: each problem names its key path and, best effort, its line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Problem:
    """One thing wrong (``error``: the service will not start) or odd (``warning``) in a config file.

    ``key`` is the exact key path (``printer[0].access_code``); ``line`` is 1-based and best effort.
    """

    level: Literal["error", "warning"]
    key: str
    message: str
    line: int | None = None
    source: str = "bambupi.toml"

    def __str__(self) -> str:
        parts = [self.source if self.line is None else f"{self.source}:{self.line}"]
        if self.level == "warning":
            parts.append("warning")
        if self.key:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(Exception):
    """The config has errors; ``str()`` lists every problem, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def errors(problems: Sequence[Problem]) -> list[Problem]:
    return [p for p in problems if p.level == "error"]
