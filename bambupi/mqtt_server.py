"""An MQTT 3.1.1 server over TLS that speaks like a Bambu printer's broker: the packet codec and the server.

Real Bambu printers run their own broker on port 8883: TLS, user ``bblp``, password = the LAN access code, only
``device/<serial>/report`` may be subscribed and commands arrive on ``device/<serial>/request``. Two parts of bambupi
play that part: the simulated printer (:mod:`bambupi.sim.broker`) and the box's printer facade
(:mod:`bambupi.facade`), which serves other apps the printer's reports from the box's one connection.

The packet codec is pure functions (bytes in, values out). :class:`MqttServer` is a thin trio layer with one task
group per client and a bounded outbox per client, so a client that misbehaves or stops reading only ever loses its
own connection. What a client may subscribe and what its PUBLISHes do is the owner's (``may_subscribe``,
``on_publish``).
"""

from __future__ import annotations

import hmac
import logging
import math
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

import trio

log = logging.getLogger(__name__)

MAX_PACKET_SIZE: Final = 1024 * 1024  # remaining length we accept; reports are a few KiB
PROTOCOL_LEVEL_311: Final = 4
USERNAME: Final = "bblp"

HANDSHAKE_TIMEOUT_S: Final = 10.0
CONNECT_TIMEOUT_S: Final = 10.0  # from TLS up to a CONNECT packet
SEND_TIMEOUT_S: Final = 10.0  # a client that cannot take a packet for this long is dropped
LOG_AGAIN_S: Final = 600.0  # a client id's connects and disconnects are logged at INFO at most this often
LOGGED_IDS: Final = 256
OUTBOX_SIZE: Final = 512  # queued sends per client before it counts as stuck
# Connections not yet logged in (TLS handshake, waiting for CONNECT) held at once: each holds a file descriptor for
# up to the two timeouts above, so a flood of idle connections (a LAN scanner, an app leaking sockets) would use up
# the process's descriptors (1024 by default) and with them the box's web page, printer link and database. Past
# this many, a new connection is closed at once; apps logged in are bounded by ``max_clients``.
MAX_PENDING: Final = 32


# --------------------------------------------------------------------------------------------------------------------
# Packet codec (pure)
# --------------------------------------------------------------------------------------------------------------------


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnackCode(IntEnum):
    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_CREDENTIALS = 4
    NOT_AUTHORIZED = 5


SUBACK_FAILURE: Final = 0x80


class MalformedPacket(ValueError):
    """The bytes are not a valid MQTT 3.1.1 packet; the connection that sent them is closed."""


class UnacceptableProtocol(Exception):
    """A well-formed CONNECT for a protocol other than MQTT 3.1.1 (answered with CONNACK 1)."""

    def __init__(self, name: str, level: int) -> None:
        super().__init__(f"protocol {name!r} level {level}")
        self.level = level


@dataclass(frozen=True)
class RawPacket:
    type: int
    flags: int
    body: bytes


@dataclass(frozen=True)
class Connect:
    client_id: str
    keepalive: int
    clean_session: bool
    username: str | None
    password: bytes | None


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int | None


@dataclass(frozen=True)
class Subscribe:
    packet_id: int
    filters: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Unsubscribe:
    packet_id: int
    filters: tuple[str, ...]


def encode_remaining_length(length: int) -> bytes:
    if not 0 <= length <= 268_435_455:
        raise ValueError(f"remaining length {length} out of range")
    out = bytearray()
    while True:
        length, digit = divmod(length, 128)
        out.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(out)


def decode_fixed_header(buf: bytes | bytearray, max_size: int = MAX_PACKET_SIZE) -> tuple[int, int] | None:
    """``(header_length, remaining_length)`` of the packet at the start of ``buf``, or None if more bytes are needed."""
    length = 0
    for index in range(1, 5):
        if index >= len(buf):
            return None
        byte = buf[index]
        length |= (byte & 0x7F) << (7 * (index - 1))
        if not byte & 0x80:
            if length > max_size:
                raise MalformedPacket(f"packet of {length} bytes exceeds the {max_size} byte limit")
            return index + 1, length
    raise MalformedPacket("remaining length longer than 4 bytes")


class PacketReader:
    """Splits a byte stream into packets; holds at most one packet plus one read's worth of bytes."""

    def __init__(self, max_size: int = MAX_PACKET_SIZE) -> None:
        self.max_size = max_size
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray) -> None:
        self._buf += data

    def next_packet(self) -> RawPacket | None:
        header = decode_fixed_header(self._buf, self.max_size)
        if header is None:
            return None
        header_length, remaining = header
        end = header_length + remaining
        if len(self._buf) < end:
            return None
        first = self._buf[0]
        packet = RawPacket(first >> 4, first & 0x0F, bytes(self._buf[header_length:end]))
        del self._buf[:end]
        return packet


class _Cursor:
    """Reads MQTT fields from a packet body; running past the end is a malformed packet."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise MalformedPacket("packet ends inside a field")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("string is not valid UTF-8") from None
        if "\x00" in text:
            raise MalformedPacket("string contains U+0000")
        return text

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def parse_connect(body: bytes) -> Connect:
    cursor = _Cursor(body)
    name = cursor.string()
    level = cursor.u8()
    if (name, level) != ("MQTT", PROTOCOL_LEVEL_311):
        # Anything past the level is laid out differently in other versions (MQTT 5 properties): stop here.
        raise UnacceptableProtocol(name, level)
    flags = cursor.u8()
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set")
    keepalive = cursor.u16()
    client_id = cursor.string()
    will = bool(flags & 0x04)
    will_qos = (flags >> 3) & 0x03
    if will_qos == 3 or (not will and (will_qos or flags & 0x20)):
        raise MalformedPacket("CONNECT will flags inconsistent")
    if will:
        cursor.string()  # will topic: the printer never publishes wills, so it is read and dropped
        cursor.binary()
    username = cursor.string() if flags & 0x80 else None
    if flags & 0x40 and username is None:
        raise MalformedPacket("CONNECT has a password without a username")
    password = cursor.binary() if flags & 0x40 else None
    if not cursor.at_end:
        raise MalformedPacket("CONNECT has trailing bytes")
    return Connect(client_id, keepalive, bool(flags & 0x02), username, password)


def parse_publish(flags: int, body: bytes) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    cursor = _Cursor(body)
    topic = cursor.string()
    if not topic or "+" in topic or "#" in topic:
        raise MalformedPacket("PUBLISH topic empty or has wildcards")
    packet_id = None
    if qos:
        packet_id = cursor.u16()
        if packet_id == 0:
            raise MalformedPacket("PUBLISH packet id 0")
    return Publish(topic, cursor.rest(), qos, bool(flags & 0x01), packet_id)


def parse_subscribe(flags: int, body: bytes) -> Subscribe:
    if flags != 0x02:
        raise MalformedPacket("SUBSCRIBE fixed header flags must be 0010")
    cursor = _Cursor(body)
    packet_id = cursor.u16()
    filters: list[tuple[str, int]] = []
    while not cursor.at_end:
        topic_filter = cursor.string()
        options = cursor.u8()
        if options > 2 or not topic_filter:
            raise MalformedPacket("SUBSCRIBE filter empty or bad requested QoS")
        filters.append((topic_filter, options))
    if packet_id == 0 or not filters:
        raise MalformedPacket("SUBSCRIBE without packet id or filters")
    return Subscribe(packet_id, tuple(filters))


def parse_unsubscribe(flags: int, body: bytes) -> Unsubscribe:
    if flags != 0x02:
        raise MalformedPacket("UNSUBSCRIBE fixed header flags must be 0010")
    cursor = _Cursor(body)
    packet_id = cursor.u16()
    filters: list[str] = []
    while not cursor.at_end:
        filters.append(cursor.string())
    if packet_id == 0 or not filters:
        raise MalformedPacket("UNSUBSCRIBE without packet id or filters")
    return Unsubscribe(packet_id, tuple(filters))


def encode_packet(packet_type: PacketType, body: bytes = b"", flags: int = 0) -> bytes:
    return bytes([packet_type << 4 | flags]) + encode_remaining_length(len(body)) + body


def _encode_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return len(raw).to_bytes(2, "big") + raw


def encode_connack(code: ConnackCode, session_present: bool = False) -> bytes:
    return encode_packet(PacketType.CONNACK, bytes([int(session_present), code]))


def encode_publish(topic: str, payload: bytes, *, qos: int = 0, packet_id: int | None = None) -> bytes:
    body = _encode_string(topic)
    if qos:
        if packet_id is None:
            raise ValueError("QoS > 0 needs a packet id")
        body += packet_id.to_bytes(2, "big")
    return encode_packet(PacketType.PUBLISH, body + payload, flags=qos << 1)


def encode_puback(packet_id: int) -> bytes:
    return encode_packet(PacketType.PUBACK, packet_id.to_bytes(2, "big"))


def encode_suback(packet_id: int, codes: Sequence[int]) -> bytes:
    return encode_packet(PacketType.SUBACK, packet_id.to_bytes(2, "big") + bytes(codes))


def encode_unsuback(packet_id: int) -> bytes:
    return encode_packet(PacketType.UNSUBACK, packet_id.to_bytes(2, "big"))


PINGRESP: Final = encode_packet(PacketType.PINGRESP)


# --------------------------------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------------------------------


class ClientGone(Exception):
    """The client closed the connection, broke the protocol, or stopped talking; its connection ends."""


@dataclass(eq=False)
class ClientSession:
    """One logged-in client: its subscriptions and a bounded outbox drained by its writer task."""

    client_id: str
    peer: str
    outbox: trio.MemorySendChannel[bytes]
    cancel_scope: trio.CancelScope
    server_name: str = "mqtt"
    subscriptions: set[str] = field(default_factory=set)

    def send(self, data: bytes) -> None:
        """Queue ``data`` for one ``send_all`` (one TLS record when it fits); a stuck client is dropped."""
        try:
            self.outbox.send_nowait(data)
        except trio.WouldBlock:
            log.warning("%s: client %r is not reading; dropping it", self.server_name, self.client_id)
            self.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


OnPublish = Callable[[ClientSession, Publish], None]


class MqttServer:
    """A printer-like MQTT server: user ``bblp`` with ``password``, the topics ``may_subscribe`` allows (others get
    a SUBACK failure, as on a printer), each client PUBLISH handed to ``on_publish`` (QoS 1 acknowledged first).

    ``name`` starts its log lines ("simulator", "facade"). ``connections`` counts the logins it accepted,
    ``refused`` the ones it turned away; ``max_clients`` bounds the clients at once (a further one gets CONNACK 3).
    """

    def __init__(
        self,
        name: str,
        password: bytes,
        ssl_context: ssl.SSLContext,
        *,
        may_subscribe: Callable[[str], bool],
        on_publish: OnPublish,
        max_clients: int | None = None,
        outbox_size: int = OUTBOX_SIZE,
        max_packet_size: int = MAX_PACKET_SIZE,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.name = name
        self._password = password
        self._ssl_context = ssl_context
        self._may_subscribe = may_subscribe
        self._on_publish = on_publish
        self.max_clients = max_clients
        self._outbox_size = outbox_size
        self._max_packet_size = max_packet_size
        self._sessions: dict[str, ClientSession] = {}
        self.connections = 0
        self.refused = 0
        self.max_pending = max_pending
        self.pending = 0  # connections not yet logged in
        self.turned_away = 0  # connections closed at once because max_pending were pending
        # When each client id last had its comings and goings logged: an app stuck in a reconnect loop is logged
        # once per LOG_AGAIN_S, not at every connection (the box's log lives on an SD card).
        self._logged_at: dict[str, float] = {}

    @property
    def connected_clients(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[ClientSession]:
        return list(self._sessions.values())

    def publish(self, topic: str, payloads: Sequence[bytes], *, coalesce: bool = False) -> None:
        """Send QoS 0 PUBLISHes to every subscriber; ``coalesce`` puts them all in one write (one TLS record)."""
        packets = [encode_publish(topic, payload) for payload in payloads]
        if not packets:
            return
        for session in list(self._sessions.values()):
            if topic not in session.subscriptions:
                continue
            if coalesce:
                session.send(b"".join(packets))
            else:
                for packet in packets:
                    session.send(packet)

    def drop_subscribers(self, topic: str) -> int:
        """Close the connections of the clients subscribed to ``topic``; returns how many."""
        sessions = [s for s in self._sessions.values() if topic in s.subscriptions]
        for session in sessions:
            session.cancel_scope.cancel()
        return len(sessions)

    def drop_clients(self) -> int:
        """Close every client connection abruptly (no DISCONNECT in MQTT 3.1.1); returns how many."""
        sessions = list(self._sessions.values())
        for session in sessions:
            session.cancel_scope.cancel()
        return len(sessions)

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on ``host:port`` (0 = any free port) and report the bound port when ready."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_client, listeners)
            task_status.started(bound)

    async def _serve_client(self, tcp: trio.SocketStream) -> None:
        if self.pending >= self.max_pending:
            self.turned_away += 1
            await trio.aclose_forcefully(tcp)
            return
        try:
            peer = "{}:{}".format(*tcp.socket.getpeername()[:2])
        except OSError:
            peer = "?"
        stream = trio.SSLStream(tcp, self._ssl_context, server_side=True)
        try:
            await self._converse(stream, peer)
        except Exception as exc:  # one client's trouble must never reach the listener or the other clients
            log.debug("%s: client at %s closed: %s", self.name, peer, _describe(exc))
        finally:
            await trio.aclose_forcefully(stream)

    async def _converse(self, stream: trio.SSLStream[trio.SocketStream], peer: str) -> None:
        self.pending += 1
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT_S):
                await stream.do_handshake()
            reader = PacketReader(self._max_packet_size)
            with trio.fail_after(CONNECT_TIMEOUT_S):
                first = await _next_packet(stream, reader, deadline=math.inf)
        finally:
            self.pending -= 1
        if first.type != PacketType.CONNECT:
            raise ClientGone(f"first packet was type {first.type}, not CONNECT")
        try:
            connect = parse_connect(first.body)
        except UnacceptableProtocol as exc:
            await stream.send_all(encode_connack(ConnackCode.UNACCEPTABLE_PROTOCOL))
            raise ClientGone(f"refused {exc}") from None
        code = self._admit(connect)
        if code is not ConnackCode.ACCEPTED:
            self.refused += 1
            if code is ConnackCode.NOT_AUTHORIZED:
                log.debug("%s: refused a client from %s: wrong user or access code", self.name, peer)
            await stream.send_all(encode_connack(code))
            raise ClientGone(f"client {connect.client_id!r} refused: {code.name}")

        outbox, queued = trio.open_memory_channel[bytes](self._outbox_size)
        async with trio.open_nursery() as nursery:
            session = ClientSession(connect.client_id, peer, outbox, nursery.cancel_scope, self.name)
            session.send(encode_connack(ConnackCode.ACCEPTED))
            previous = self._sessions.pop(connect.client_id, None)
            if previous is not None:
                # Same client id twice: the newcomer wins, as on a real broker (and on the printers).
                log.info("%s: client id %r reconnected; closing its older connection", self.name, connect.client_id)
                previous.cancel_scope.cancel()
            self._sessions[connect.client_id] = session
            self.connections += 1
            level = self._log_level(connect.client_id)
            log.log(level, "%s: client %r connected from %s", self.name, connect.client_id, peer)
            try:
                nursery.start_soon(_write_loop, stream, queued)
                await self._read_loop(stream, reader, session, connect.keepalive)
                nursery.cancel_scope.cancel()
            finally:
                if self._sessions.get(connect.client_id) is session:
                    del self._sessions[connect.client_id]
                log.log(level, "%s: client %r disconnected", self.name, connect.client_id)

    def _log_level(self, client_id: str) -> int:
        """INFO for a client id not logged within LOG_AGAIN_S, else DEBUG; remembers at most LOGGED_IDS ids."""
        now = trio.current_time()
        last = self._logged_at.get(client_id)
        if last is not None and now - last < LOG_AGAIN_S:
            return logging.DEBUG
        self._logged_at.pop(client_id, None)
        self._logged_at[client_id] = now
        while len(self._logged_at) > LOGGED_IDS:
            del self._logged_at[next(iter(self._logged_at))]  # the oldest (dicts keep insertion order)
        return logging.INFO

    def _admit(self, connect: Connect) -> ConnackCode:
        if not connect.client_id:
            return ConnackCode.IDENTIFIER_REJECTED
        password_ok = connect.password is not None and hmac.compare_digest(connect.password, self._password)
        if connect.username != USERNAME or not password_ok:
            return ConnackCode.NOT_AUTHORIZED
        full = self.max_clients is not None and len(self._sessions) >= self.max_clients
        if full and connect.client_id not in self._sessions:
            return ConnackCode.SERVER_UNAVAILABLE
        return ConnackCode.ACCEPTED

    async def _read_loop(
        self, stream: trio.SSLStream[trio.SocketStream], reader: PacketReader, session: ClientSession, keepalive: int
    ) -> None:
        # MQTT 3.1.1 §3.1.2.10: no packet for 1.5 × keepalive means the client is gone.
        grace = 1.5 * keepalive if keepalive else math.inf
        while True:
            packet = await _next_packet(stream, reader, deadline=trio.current_time() + grace)
            if packet.type == PacketType.DISCONNECT:
                return
            self._handle(packet, session)

    def _handle(self, packet: RawPacket, session: ClientSession) -> None:
        kind = packet.type
        if kind == PacketType.PUBLISH:
            publish = parse_publish(packet.flags, packet.body)
            if publish.qos == 2:
                raise ClientGone("QoS 2 PUBLISH is not supported")
            if publish.packet_id is not None:
                session.send(encode_puback(publish.packet_id))
            self._on_publish(session, publish)
        elif kind == PacketType.SUBSCRIBE:
            subscribe = parse_subscribe(packet.flags, packet.body)
            codes = []
            for topic_filter, qos in subscribe.filters:
                if self._may_subscribe(topic_filter):
                    session.subscriptions.add(topic_filter)
                    codes.append(min(qos, 1))
                else:
                    codes.append(SUBACK_FAILURE)
            session.send(encode_suback(subscribe.packet_id, codes))
        elif kind == PacketType.UNSUBSCRIBE:
            unsubscribe = parse_unsubscribe(packet.flags, packet.body)
            session.subscriptions.difference_update(unsubscribe.filters)
            session.send(encode_unsuback(unsubscribe.packet_id))
        elif kind == PacketType.PINGREQ:
            if packet.flags or packet.body:
                raise MalformedPacket("PINGREQ with flags or body")
            session.send(PINGRESP)
        elif kind == PacketType.PUBACK:
            pass  # we only publish QoS 0, but an ack for nothing is harmless
        else:
            raise ClientGone(f"unexpected packet type {kind} from a client")


async def _next_packet(stream: trio.abc.ReceiveStream, reader: PacketReader, *, deadline: float) -> RawPacket:
    while (packet := reader.next_packet()) is None:
        with trio.move_on_at(deadline):
            data = await stream.receive_some(65536)
            if not data:
                raise ClientGone("client closed the connection")
            reader.feed(data)
            continue
        raise ClientGone("keepalive expired")
    return packet


async def _write_loop(stream: trio.abc.SendStream, queued: trio.MemoryReceiveChannel[bytes]) -> None:
    async for data in queued:
        with trio.fail_after(SEND_TIMEOUT_S):
            await stream.send_all(data)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
