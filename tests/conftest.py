"""Shared fixtures. Every test has an absolute time limit (pytest-timeout, see pyproject)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Box, logged_in_box, mount, umount

REPO = Path(__file__).resolve().parent.parent

# No test reaches the internet: a service started by a test (in this process or as a subprocess, which inherits
# this) would fetch Bambu's HMS texts from https://e.bambulab.com. HTTPS to anything but this machine goes to a
# closed local port instead and fails at once; the HMS tests use their own stand-in service on 127.0.0.1.
os.environ["HTTPS_PROXY"] = os.environ["https_proxy"] = "http://127.0.0.1:9"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB filesystem: :func:`tests.support.fill` takes its last free block, deleting the filler gives it
    back."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mount("-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        umount(folder)


@pytest.fixture
async def logged_in(tmp_path: Path) -> AsyncIterator[tuple[Box, httpx.AsyncClient, str]]:
    """A box with its printer online, and the owner's client logged in with its CSRF token."""
    async with logged_in_box(tmp_path) as logged:
        yield logged
