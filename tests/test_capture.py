from __future__ import annotations

from bambupi.printer.capture import MAX_PAYLOAD_CHARS, MqttCapture
from bambupi.secret import MASK, Secret

CODE = "27182818"


def test_access_code_is_masked_in_payload_and_topic_before_storing() -> None:
    capture = MqttCapture((Secret(CODE),))
    capture.record("in", f"device/{CODE}/report", f'{{"code": "{CODE}"}}'.encode())
    capture.record("out", "device/x/request", f"password={CODE}")
    for message in capture.messages():
        assert CODE not in message.payload and CODE not in message.topic
        assert MASK in message.payload
    assert [m.direction for m in capture.messages()] == ["in", "out"]


def test_ring_buffer_keeps_the_newest_and_since_filters() -> None:
    capture = MqttCapture((), capacity=3)
    for i in range(5):
        capture.record("in", "t", f"m{i}")
    kept = capture.messages()
    assert [m.payload for m in kept] == ["m2", "m3", "m4"]
    assert [m.payload for m in capture.messages(since=kept[1].seq)] == ["m4"]


def test_long_payload_is_cut_and_invalid_utf8_is_latin1() -> None:
    capture = MqttCapture((Secret(CODE),))
    big = capture.record("in", "t", b"a" * (MAX_PAYLOAD_CHARS - 3) + CODE.encode())
    assert big.truncated and len(big.payload) == MAX_PAYLOAD_CHARS and CODE[:3] not in big.payload[-3:]
    assert big.size == MAX_PAYLOAD_CHARS + 5
    odd = capture.record("in", "t", b"caf\xe9")
    assert odd.payload == "café"
