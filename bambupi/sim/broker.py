"""The simulated printer's MQTT server over TLS (:class:`Broker`), and the TLS context its servers share.

Real Bambu printers run their own broker on port 8883: TLS 1.2, user ``bblp``, password = the LAN access code,
only ``device/<serial>/report`` may be subscribed and commands arrive on ``device/<serial>/request``. The codec and
the server live in :mod:`bambupi.mqtt_server` (the box's printer facade speaks the same protocol); this module
gives them the printer's one serial. :class:`bambupi.sim.simulator.Simulator` joins it to the simulated printer.
"""

from __future__ import annotations

import importlib.resources
import ssl
from collections.abc import Callable
from pathlib import Path

from bambupi.mqtt_server import (
    MAX_PACKET_SIZE,
    ClientSession,
    MalformedPacket,
    MqttServer,
    PacketReader,
    Publish,
    UnacceptableProtocol,
    decode_fixed_header,
    encode_remaining_length,
    parse_connect,
    parse_publish,
    parse_subscribe,
    parse_unsubscribe,
)

__all__ = [
    "MAX_PACKET_SIZE",
    "Broker",
    "MalformedPacket",
    "PacketReader",
    "UnacceptableProtocol",
    "decode_fixed_header",
    "encode_remaining_length",
    "parse_connect",
    "parse_publish",
    "parse_subscribe",
    "parse_unsubscribe",
    "server_ssl_context",
]


def server_ssl_context(cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """TLS 1.2 only, like the printers' brokers; the shipped self-signed pair unless ``cert``/``key`` are given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
        return context
    data = importlib.resources.files("bambupi") / "data"
    with (
        importlib.resources.as_file(data / "sim-cert.pem") as cert_path,
        importlib.resources.as_file(data / "sim-key.pem") as key_path,
    ):
        context.load_cert_chain(cert_path, key_path)
    return context


class Broker(MqttServer):
    """The printer's MQTT server: authentication, the one subscribable topic, commands handed to ``on_request``.

    ``connections`` counts the clients it ever let in (tests count the box's one connection with it)."""

    def __init__(
        self,
        serial: str,
        access_code: str,
        ssl_context: ssl.SSLContext,
        on_request: Callable[[bytes], None],
        *,
        max_clients: int | None = None,
    ) -> None:
        self.report_topic = f"device/{serial}/report"
        self.request_topic = f"device/{serial}/request"
        self._on_request = on_request
        super().__init__(
            "simulator", access_code.encode("utf-8"), ssl_context, may_subscribe=self._may_subscribe_topic,
            on_publish=self._publish_from_client, max_clients=max_clients,
        )

    def _may_subscribe_topic(self, topic: str) -> bool:
        return topic == self.report_topic

    def _publish_from_client(self, session: ClientSession, publish: Publish) -> None:
        if publish.topic == self.request_topic:
            self._on_request(publish.payload)
