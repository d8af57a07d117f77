"""Shared fixtures. Every test has an absolute time limit (pytest-timeout, see pyproject)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("BAMBUPI_TESTING", "1")
