"""The facade's (and the simulator's) MQTT server logs an app's comings and goings once per 10 minutes per client id:
an app stuck in a reconnect loop must not fill the box's SD card with log lines."""

from __future__ import annotations

import logging
import ssl

import trio

from bambupi.mqtt_server import LOG_AGAIN_S, LOGGED_IDS, MqttServer


def server() -> MqttServer:
    return MqttServer(
        "facade", b"code", ssl.create_default_context(), may_subscribe=lambda topic: True,
        on_publish=lambda session, topic, payload: None,
    )


async def test_a_client_reconnecting_in_a_loop_is_logged_once_per_interval(autojump_clock: trio.abc.Clock) -> None:
    s = server()
    assert s._log_level("app") == logging.INFO
    for _ in range(50):  # a reconnect loop
        await trio.sleep(1)
        assert s._log_level("app") == logging.DEBUG
    assert s._log_level("another app") == logging.INFO
    await trio.sleep(LOG_AGAIN_S)
    assert s._log_level("app") == logging.INFO


async def test_the_memory_of_client_ids_is_bounded(autojump_clock: trio.abc.Clock) -> None:
    s = server()
    for n in range(LOGGED_IDS * 3):
        assert s._log_level(f"random-{n}") == logging.INFO
    assert len(s._logged_at) == LOGGED_IDS
    assert s._log_level("random-0") == logging.INFO  # forgotten: the oldest went first
