"""Pure framing for camera streams: the P1/A1 port-6000 protocol and a JPEG splitter for ffmpeg's MJPEG output.

Port 6000 (docs/camera.md): the client sends an 80-byte auth packet, then the printer sends frames, each a
16-byte little-endian header (u32 payload size, u32 0, u32 1, u32 0) and a JPEG (FF D8 ... FF D9). Everything here
is bytes in, values out; nothing allocates more than :data:`MAX_FRAME_BYTES` for one frame, whatever a header says.
"""

from __future__ import annotations

import hmac
import struct
from typing import Final

AUTH_SIZE: Final = 80
HEADER_SIZE: Final = 16
# A 1280x720 printer JPEG is 30-200 KB; a size field beyond this is garbage, not a picture.
MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
USERNAME: Final = "bblp"

SOI: Final = b"\xff\xd8"
EOI: Final = b"\xff\xd9"


class FrameError(ValueError):
    """The stream is not speaking the camera protocol (garbage header, oversized or non-JPEG frame)."""


def auth_packet(access_code: str, username: str = USERNAME) -> bytes:
    """The 80-byte packet a port-6000 client sends first; ``access_code`` is a secret (never log the result)."""
    user, code = username.encode(), access_code.encode()
    if len(user) > 32 or len(code) > 32:
        raise ValueError("username and access code must fit in 32 bytes")
    return struct.pack("<IIII32s32s", 0x40, 0x3000, 0, 0, user, code)


def parse_auth(packet: bytes) -> tuple[str, str] | None:
    """``(username, access_code)`` from an auth packet, or None when it is not one (used by the simulator)."""
    if len(packet) != AUTH_SIZE:
        return None
    magic, kind, zero1, zero2, user, code = struct.unpack("<IIII32s32s", packet)
    if (magic, kind, zero1, zero2) != (0x40, 0x3000, 0, 0):
        return None
    return user.rstrip(b"\0").decode("latin-1"), code.rstrip(b"\0").decode("latin-1")


def auth_accepted(packet: bytes, access_code: bytes) -> bool:
    """Whether ``packet`` is an auth packet for user ``bblp`` with ``access_code`` (compared in constant time)."""
    auth = parse_auth(packet)
    return auth is not None and auth[0] == USERNAME and hmac.compare_digest(auth[1].encode("latin-1"), access_code)


def frame_header(size: int) -> bytes:
    return struct.pack("<IIII", size, 0, 1, 0)


def parse_header(header: bytes, *, max_size: int = MAX_FRAME_BYTES) -> int:
    """The payload size announced by a 16-byte frame header; raises :class:`FrameError` when it is not sane."""
    if len(header) != HEADER_SIZE:
        raise FrameError(f"frame header is {len(header)} bytes, not {HEADER_SIZE}")
    size: int = struct.unpack_from("<I", header)[0]
    if size == 0:
        raise FrameError("frame header announces an empty frame")
    if size > max_size:
        raise FrameError(f"frame header announces {size} bytes (limit {max_size})")
    return size


def is_jpeg(payload: bytes | bytearray | memoryview) -> bool:
    """Starts with SOI and ends with EOI: a whole JPEG as far as a relay needs to know."""
    return len(payload) >= 4 and payload[:2] == SOI and payload[-2:] == EOI


class JpegSplitter:
    """Cuts a byte stream of concatenated JPEGs (ffmpeg ``-f mjpeg``) into whole frames.

    Marker-aware, not a blind search for FF D9: segments before the scan data are skipped by their length (an EXIF
    thumbnail's own EOI does not end the frame), and in entropy-coded data only FF followed by something other than
    00 or a restart marker is a marker. Bytes before an SOI are discarded; a frame growing past ``max_size`` is
    dropped and the splitter resynchronises at the next SOI, so memory stays bounded whatever the input.
    """

    def __init__(self, max_size: int = MAX_FRAME_BYTES) -> None:
        self._max = max_size
        self._buf = bytearray()
        self._pos = 2  # where parsing of the current frame resumes (after its SOI)
        self._in_scan = False
        self.dropped = 0  # frames discarded as oversized or malformed

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        while True:
            if not self._sync():
                return frames
            end = self._parse()
            if end is None:
                if len(self._buf) > self._max:
                    self._drop()
                    continue
                return frames
            if end < 0 or end > self._max:
                self._drop()
                continue
            frames.append(bytes(self._buf[:end]))
            del self._buf[:end]
            self._reset()

    def _reset(self) -> None:
        self._pos, self._in_scan = 2, False

    def _drop(self) -> None:
        self.dropped += 1
        del self._buf[:2]  # skip this SOI; _sync finds the next one
        self._reset()

    def _sync(self) -> bool:
        """Put an SOI at the buffer's start; False when there is none yet."""
        if self._buf[:2] == SOI:
            return True
        start = self._buf.find(SOI)
        if start < 0:
            # Keep a trailing FF: it may be the first half of the next SOI.
            del self._buf[: len(self._buf) - 1 if self._buf.endswith(b"\xff") else len(self._buf)]
            return False
        del self._buf[:start]
        self._reset()
        return True

    def _parse(self) -> int | None:
        """The end offset of the frame at the buffer's start, None if more bytes are needed, -1 if malformed."""
        buf = self._buf
        pos = self._pos
        while True:
            if self._in_scan:
                found = buf.find(b"\xff", pos)
                while found >= 0 and found + 1 < len(buf) and (buf[found + 1] == 0 or 0xD0 <= buf[found + 1] <= 0xD7):
                    found = buf.find(b"\xff", found + 2)
                if found < 0 or found + 1 >= len(buf):
                    self._pos = max(pos, len(buf) - 1)
                    return None
                pos = found
                self._in_scan = False
            if pos + 2 > len(buf):
                self._pos = pos
                return None
            if buf[pos] != 0xFF:
                return -1
            marker = buf[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if marker == 0xD9:
                return pos + 2
            if 0xD0 <= marker <= 0xD7 or marker == 0x01:
                pos += 2
                continue
            if pos + 4 > len(buf):
                self._pos = pos
                return None
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            if length < 2:
                return -1
            if pos + 2 + length > len(buf):
                self._pos = pos  # the segment has not all arrived: resume at its marker
                return None
            pos += 2 + length
            # Start of scan: entropy-coded data follows its header.
            self._in_scan = marker == 0xDA
