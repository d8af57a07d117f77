"""The box's own address on the LAN, as the web page's "open this" line and the OLED's network screen show it."""

from __future__ import annotations

import socket

# TEST-NET-1 (RFC 5737): never routed, so asking the kernel for a route there picks the default interface's address.
_SOMEWHERE_BEYOND = ("192.0.2.1", 9)


def lan_address() -> str | None:
    """The IPv4 address the kernel would send LAN traffic from; None without a network (or only loopback)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(_SOMEWHERE_BEYOND)  # a UDP "connect" sends nothing: it only picks the route
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address
