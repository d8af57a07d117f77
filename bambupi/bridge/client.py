"""BrokerSession: one connection to the home broker, paho-mqtt driven from trio (bambupi.mqtt_loop), with a last will,
latest-value publishing and the commands it receives.

A session is one attempt and, if the broker takes the login, the life of that connection; the bridge makes a new one
after each failure (with backoff) and after each change of its settings. Publishing is latest-value per topic: while
a topic's last message waits for the broker's acknowledgement, a newer one replaces any other waiting behind it, so a
slow broker costs the box at most one message per topic (:meth:`BrokerSession.offer`). Events, which must not be
skipped, wait for room instead (:meth:`BrokerSession.send_event`): the hub's bounded queue holds them meanwhile.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as mqtt
import trio
from paho.mqtt.enums import CallbackAPIVersion

from bambupi.bridge.messages import OFFLINE, ONLINE
from bambupi.config import BridgeConfig
from bambupi.mqtt_loop import PahoLoop

log = logging.getLogger("bambupi.bridge")

KEEPALIVE_S: Final = 30
EVENTS_IN_FLIGHT: Final = 20  # events sent but not yet acknowledged; more wait in the hub's queue
# CONNACK codes that mean "wrong credentials" (3.1.1: 4 bad user name or password, 5 not authorised; MQTT 5 134/135).
AUTH_REFUSED_CODES: Final = frozenset({4, 5, 134, 135})


class BrokerFailure(Exception):
    """Why a session ended or never began, in words an owner can act on (never holding the password)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def tls_context(settings: BridgeConfig) -> ssl.SSLContext:
    """The TLS context for ``[bridge] ca``: the system's CAs, a CA file, or no check at all ("insecure")."""
    if settings.ca == "insecure":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        try:
            context = ssl.create_default_context(cafile=None if settings.ca == "system" else settings.ca)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
            raise BrokerFailure(f"cannot read the CA file {settings.ca} ([bridge] ca): {reason}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass
class _Waiting:
    payload: bytes
    retain: bool


class BrokerSession:
    """One connection to the broker. ``on_message(topic, payload, retained)`` is called in trio's thread for each
    message on a subscribed topic (``retained``: the broker kept it and hands it to this new subscription),
    ``on_up()`` once the broker took the login (and "online" is on its way)."""

    def __init__(
        self,
        settings: BridgeConfig,
        *,
        availability_topic: str,
        subscriptions: tuple[str, ...],
        on_message: Callable[[str, bytes, bool], None],
        on_up: Callable[[], None],
        keepalive_s: int = KEEPALIVE_S,
    ) -> None:
        self.settings = settings
        self.where = f"{settings.host}:{settings.broker_port}"
        self.availability_topic = availability_topic
        self.subscriptions = subscriptions
        self.keepalive_s = keepalive_s
        self._on_message_cb = on_message
        self._on_up = on_up
        self.logged_in = False
        self.leaving = False  # goodbye() was said: the end that follows is planned, not a failure
        self.connected = trio.Event()  # set once the broker took the login
        self.published = 0  # messages the broker acknowledged, for tests and health
        self._failure: BrokerFailure | None = None
        self._cancel = trio.CancelScope()
        self._connack = trio.Event()
        self._context = tls_context(settings) if settings.tls else None
        self.client = self._make_client()
        self.loop = PahoLoop(self.client, fail=lambda words: self.fail(self._lost(words)), closed=self._cancel.cancel)
        # Latest-value publishing: topic -> the message id in flight, and the newest message waiting behind it.
        self._in_flight: dict[int, str] = {}
        self._busy: set[str] = set()
        self._waiting: dict[str, _Waiting] = {}
        self._sent: dict[str, bytes] = {}  # what this session last sent per topic (unchanged values are not resent)
        self._events_in_flight: set[int] = set()
        self._room = trio.lowlevel.ParkingLot()

    def _make_client(self) -> mqtt.Client:
        settings = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bambupi-bridge-{uuid.uuid4().hex[:12]}",  # unique: two boxes must not knock each other off
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if settings.username:
            client.username_pw_set(settings.username, settings.password.reveal() if settings.password else None)
        if self._context is not None:
            client.tls_set_context(self._context)
        # The broker says "offline" for the box when the connection dies without a goodbye (power cut, crash).
        client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        client.connect_timeout = settings.connect_timeout_s
        client.on_socket_open = lambda _client, _userdata, sock: self.loop.opened(sock)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # -- the session --------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect and serve until the connection fails (BrokerFailure says why) or the caller cancels."""
        try:
            await trio.to_thread.run_sync(self._connect_blocking, abandon_on_cancel=True)
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.loop.drive)
                    with trio.move_on_after(self.settings.connect_timeout_s) as connack_wait:
                        await self._connack.wait()
                    if connack_wait.cancelled_caught:
                        self.fail(BrokerFailure(f"timeout: no MQTT answer from the broker at {self.where}"))
        finally:
            self.logged_in = False
            self.loop.close_socket()  # no goodbye: the broker publishes the will ("offline")
            self._room.unpark_all()
        raise self._failure or self._lost(f"connection to the broker at {self.where} lost")

    def _lost(self, words: str) -> BrokerFailure:
        """A connection that ended; before the broker answered the login, most likely TLS spoken to a plain port
        or the other way round (the broker just closes)."""
        if self._connack.is_set():
            return BrokerFailure(words)
        return BrokerFailure(
            f"the broker at {self.where} closed the connection before answering the login "
            "(is [bridge] tls right for this port?)"
        )

    async def goodbye(self, availability: bytes = OFFLINE.encode(), timeout_s: float = 2.0) -> None:
        """A planned end (new settings, the bridge switched off): the box's availability set to ``availability``
        ("offline", or empty to clear it when its topic moves), every message acknowledged, then MQTT's DISCONNECT,
        after which the broker drops the last will (which would say "offline" on the old topic again)."""
        self.leaving = True
        if not self.logged_in:
            return
        self.offer(self.availability_topic, availability, retain=True)
        with trio.move_on_after(timeout_s):
            while self.logged_in and self._busy:
                await self._room.park()
            self.client.disconnect()
            while self.logged_in and self.loop.want_write:
                await trio.sleep(0.01)  # the writer sends it; paho then closes the socket

    def _connect_blocking(self) -> None:
        where = self.where
        host = self.settings.host or ""
        try:
            self.client.connect(host, self.settings.broker_port, keepalive=self.keepalive_s)
        except ConnectionRefusedError:
            raise BrokerFailure(
                f"connection refused by {where} (is the broker running, and is this its port?)"
            ) from None
        except TimeoutError:
            raise BrokerFailure(f"timeout connecting to the broker at {where}") from None
        except socket.gaierror:
            raise BrokerFailure(f"cannot resolve the broker's host {host!r}") from None
        except ssl.SSLCertVerificationError as exc:
            raise BrokerFailure(
                f"the broker at {where} presented a certificate that [bridge] ca does not trust "
                f"({exc.verify_message or exc.reason})"
            ) from None
        except ssl.SSLError as exc:
            raise BrokerFailure(f"TLS handshake with the broker at {where} failed ({exc.reason or type(exc).__name__}; "
                                "is [bridge] tls right for this port?)") from None
        except OSError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                raise BrokerFailure(f"no route to the broker at {where}") from None
            raise BrokerFailure(f"network error reaching the broker at {where}: "
                                f"{exc.strerror or type(exc).__name__}") from None

    def fail(self, failure: BrokerFailure) -> None:
        if self._failure is None:
            self._failure = failure
        self._cancel.cancel()

    # -- publishing ---------------------------------------------------------------------------------------
    def offer(self, topic: str, payload: bytes, *, retain: bool = True) -> None:
        """Publish the newest value of ``topic`` (QoS 1): now, or once the broker acknowledged the one before it
        (anything older waiting for that is dropped). A value equal to the last one sent is not sent again."""
        if not self.logged_in:
            return
        if topic in self._busy:
            if self._sent.get(topic) == payload:
                self._waiting.pop(topic, None)  # back to what is on its way: nothing to send after it
            else:
                self._waiting[topic] = _Waiting(payload, retain)
            return
        if self._sent.get(topic) != payload:
            self._send(topic, payload, retain)

    def _send(self, topic: str, payload: bytes, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.fail(BrokerFailure(f"connection to the broker at {self.where} lost"))
            return
        self._sent[topic] = payload
        self._busy.add(topic)
        self._in_flight[info.mid] = topic

    async def send_event(self, topic: str, payload: bytes) -> None:
        """Publish an event (QoS 1, not retained) once fewer than :data:`EVENTS_IN_FLIGHT` wait for the broker.
        BrokerFailure when the session ends meanwhile (the caller keeps the event for the next one)."""
        while self.logged_in and len(self._events_in_flight) >= EVENTS_IN_FLIGHT:
            await self._room.park()
        if not self.logged_in:
            raise BrokerFailure("not connected")
        info = self.client.publish(topic, payload, qos=1, retain=False)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.fail(BrokerFailure(f"connection to the broker at {self.where} lost"))
            raise BrokerFailure("not connected")
        self._events_in_flight.add(info.mid)

    def publish_once(self, topic: str, payload: bytes) -> None:
        """A message that is neither state nor event (a command's result): QoS 1, not retained, not tracked."""
        if self.logged_in:
            self.client.publish(topic, payload, qos=1, retain=False)

    # -- paho callbacks (in trio's thread: they fire inside loop_read / loop_write) ---------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connack.set()
        if reason.is_failure:
            if reason.value in AUTH_REFUSED_CODES:
                self.fail(BrokerFailure(
                    f"the broker at {self.where} refused the login: check [bridge] username and password"
                ))
            else:
                self.fail(BrokerFailure(f"the broker at {self.where} refused the connection ({reason})"))
            return
        self.logged_in = True
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self.offer(self.availability_topic, ONLINE.encode(), retain=True)
        self.connected.set()
        self._on_up()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.fail(self._lost(f"connection to the broker at {self.where} lost"))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._on_message_cb(message.topic, bytes(message.payload), bool(message.retain))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self.published += 1
        self._events_in_flight.discard(mid)
        topic = self._in_flight.pop(mid, None)
        if topic is not None:
            self._busy.discard(topic)
            waiting = self._waiting.pop(topic, None)
            if waiting is not None and self.logged_in:
                self._send(topic, waiting.payload, waiting.retain)
        self._room.unpark_all()
