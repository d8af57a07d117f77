"""The one LAN address probe, behind the web page's startup URLs and the OLED's network screen."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from bambupi.lan import lan_address
from bambupi.panel.service import probe_network
from bambupi.web.component import listen_urls


def test_the_lan_address_is_a_routable_ipv4_or_none() -> None:
    address = lan_address()
    assert address is None or (ipaddress.IPv4Address(address) and not ipaddress.ip_address(address).is_loopback)


def test_the_startup_urls_and_the_network_screen_show_the_same_address(tmp_path: Path) -> None:
    address = lan_address()
    expected = [] if address is None else [f"http://{address}:8080/"]
    assert listen_urls("0.0.0.0", 8080) == [*expected, "http://127.0.0.1:8080/"]
    assert probe_network(None, proc_wireless=tmp_path / "absent").ip == address
    assert listen_urls("192.168.1.5", 80) == ["http://192.168.1.5/"]
