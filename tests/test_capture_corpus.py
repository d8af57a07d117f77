"""Every kept capture names its source and parses; the corpus covers the models the protocol notes name."""

from __future__ import annotations

from tests.capture_corpus import all_captures


def test_every_capture_has_a_source_and_messages() -> None:
    for item in all_captures():
        assert item.messages, item.name
        assert item.source["repository"] and item.source["path"], item.name
        assert all(isinstance(m, dict) for m in item.messages), item.name
