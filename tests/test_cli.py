"""The ``bambupi`` command as a person types it, typos included: the real entry point in a subprocess.

A mistake is answered with one line that names it and an exit code (2: the command line; 1: the machine said no),
never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bambupi.sim.printer import PROFILES
from bambupi.sim.scenarios import SCENARIOS

HANG_S = 60  # only a hung command reaches this, however busy the machine


def bambupi(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bambupi", *args], input=stdin, capture_output=True, text=True, timeout=HANG_S
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line that explains the failure: the last on stderr (a service may have logged its start before)."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    if code == 2:  # the command line was wrong: nothing ran, nothing else was said
        assert len(lines) == 1, done.stderr
    return lines[-1]


@contextmanager
def port_in_use() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize("command", ["demo", "sim"])
def test_help_lists_every_scenario_and_model(command: str) -> None:
    done = bambupi(command, "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse wraps lines
    assert [name for name in SCENARIOS if name not in text] == []
    assert [name for name in PROFILES if name not in text] == []


@pytest.mark.parametrize("command", ["demo", "sim"])
@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--scenario", "nope", "invalid choice: 'nope' (choose from 'print', 'hms'"),
        ("--model", "nope", "unknown printer model 'nope'; choose one of: X1, X1C"),
        ("--time-scale", "0", "--time-scale: must be more than 0, got 0"),
        ("--time-scale", "fast", "--time-scale: not a number: 'fast'"),
    ],
)
def test_a_bad_simulator_option_is_one_line_and_exit_2(command: str, option: str, value: str, says: str) -> None:
    line = one_line_error(bambupi(command, option, value), 2)
    assert line.startswith(f"bambupi {command}: ") and says in line
    assert line.endswith(f"see bambupi {command} --help")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["demo", "--port", "99999"], "--port: a port is 0 to 65535, got 99999"),
        (["demo", "--port", "web"], "--port: not a port number: 'web'"),
        (["sim", "--mqtt-port", "-1"], "--mqtt-port: a port is 0 to 65535, got -1"),
        (["sim", "--camera-port", "70000"], "--camera-port: a port is 0 to 65535, got 70000"),
        (["nope"], "invalid choice: 'nope'"),
    ],
)
def test_a_bad_port_or_command_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    assert says in one_line_error(bambupi(*args), 2)


def test_a_port_in_use_is_one_line_naming_it(tmp_path: Path) -> None:
    with port_in_use() as port:
        sim = one_line_error(bambupi("sim", "--mqtt-port", str(port)), 1)
        demo = one_line_error(bambupi("demo", "--host", "127.0.0.1", "--port", str(port)), 1)
        config = tmp_path / "bambupi.toml"
        config.write_text(
            f'[web]\nlisten = "127.0.0.1:{port}"\n[storage]\npath = "{tmp_path}/db.sqlite3"\n'
            "[discovery]\nenabled = false\n"
        )
        run = one_line_error(bambupi("run", "-c", str(config)), 1)
    assert sim == f"bambupi: cannot start the simulated printer on 127.0.0.1 (MQTT port {port}): Address already " \
        "in use (another program, or another bambupi, listens there)"
    assert f"cannot start the web page on 127.0.0.1:{port}: Address already in use" in demo
    assert f"cannot start the service (web.listen = 127.0.0.1:{port}): Address already in use" in run


@pytest.mark.parametrize("command", ["run", "check-config", "trust", "set-password"])
def test_a_missing_config_file_is_named_without_a_traceback(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "bambupi.tmol"  # a typo
    args = [command, "-c", str(missing)] + (["p1"] if command == "trust" else [])
    done = bambupi(*args, stdin="a good password\n")
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode in (1, 2)
    assert str(missing) in done.stderr + done.stdout
    assert "No such file" in done.stderr + done.stdout or "no config file" in done.stderr
    assert not missing.exists()  # set-password did not create a file the service never reads


def test_set_password_leaves_a_missing_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "etc" / "bambupi.toml"
    line = one_line_error(bambupi("set-password", "-c", str(missing), stdin="a good password\n"), 1)
    assert line == f"bambupi: no config file {missing}; nothing changed (pass the service's file with -c)"
    assert not missing.parent.exists()


def test_sim_takes_a_model_as_people_write_it_and_stops_cleanly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bambupi", "sim", "--mqtt-port", "0", "--model", "a1 mini", "--scenario", "idle"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until it serves (the test's own timeout bounds a hang)
        assert first.startswith("simulated A1MINI 01P00A000000001: MQTT/TLS on 127.0.0.1:"), first
        proc.send_signal(signal.SIGINT)
        assert proc.wait(HANG_S) == 0
        assert "Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_at_the_password_prompt_is_a_stop_not_a_crash(tmp_path: Path) -> None:
    config = tmp_path / "bambupi.toml"
    config.write_text('[web]\nlisten = "127.0.0.1:8080"\n')
    primary, secondary = pty.openpty()  # a terminal, so it asks (twice) instead of reading a line from stdin
    # Its own session: no controlling terminal, so the prompt goes to the pty, never to a developer's terminal.
    # Ctrl-C as in a terminal: a suite run in the background of a script inherits SIGINT ignored.
    proc = subprocess.Popen(
        [sys.executable, "-m", "bambupi", "set-password", "-c", str(config)],
        stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(secondary)
    try:
        seen = b""
        while b"password" not in seen:  # the prompt: it waits for the person now
            ready, _, _ = select.select([primary], [], [], HANG_S)
            assert ready, seen
            seen += os.read(primary, 1024)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(HANG_S) == 130
        with contextlib.suppress(OSError):  # the pty reports EIO once the child has closed it
            while select.select([primary], [], [], 0)[0] and (chunk := os.read(primary, 1024)):
                seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    assert b"Traceback" not in seen, seen.decode(errors="replace")
    assert config.read_text() == '[web]\nlisten = "127.0.0.1:8080"\n'
