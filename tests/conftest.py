"""Shared fixtures. Every test has an absolute time limit (pytest-timeout, see pyproject)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# No test reaches the internet: a service started by a test (in this process or as a subprocess, which inherits
# this) would fetch Bambu's HMS texts from https://e.bambulab.com. HTTPS to anything but this machine goes to a
# closed local port instead and fails at once; the HMS tests use their own stand-in service on 127.0.0.1.
os.environ["HTTPS_PROXY"] = os.environ["https_proxy"] = "http://127.0.0.1:9"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"
