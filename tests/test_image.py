"""The SD-card image's appliance parts, without building the image: units, first boot, the systemd watchdog.

The image itself is built and booted by ``make image-test`` (image/test.sh), which takes ~20 minutes.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from bambupi.config import Config, WebConfig
from bambupi.service import Service
from bambupi.watchdog import Watchdog, watchdog_interval
from bambupi.web.frontdoor import FrontDoor

IMAGE = Path(__file__).resolve().parent.parent / "image"
PASSWORD = "correct horse battery"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGz0bambupitestkeyAAAAAAAAAAAAAAAAAAAAAAAA you@laptop"
ACCESS_CODE = "87654321"
GOOD = f"""# my box
[system]
hostname = "Workshop-Box"
wifi_country = "gb"
wifi_ssid = "Home Net"
wifi_password = "{PASSWORD}"
ssh_authorized_key = "{KEY}"

[[printer]]
id = "p1s"
model = "P1S"
host = "192.168.1.50"
serial = "01P00A000000000"
access_code = "{ACCESS_CODE}"
"""


# --- units ---------------------------------------------------------------------------------------------------------


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing; .ci/run should have installed systemd")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # A root holding the units, the system's own units they order against, and the programs they start.
    units = tmp_path / "etc/systemd/system"
    shutil.copytree("/lib/systemd/system", tmp_path / "usr/lib/systemd/system", symlinks=True)
    units.mkdir(parents=True)
    names = []
    for unit in (IMAGE / "units").glob("*.service"):
        shutil.copy(unit, units / unit.name)
        names.append(str(units / unit.name))
    for program in ("opt/bambupi/bin/python", "opt/bambupi/bin/bambupi", "usr/bin/ssh-keygen",
                    "usr/local/lib/bambupi/firstboot-runtime.sh", "usr/local/lib/bambupi/growroot.sh"):
        path = tmp_path / program
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    result = subprocess.run([analyze, "verify", f"--root={tmp_path}", *names], capture_output=True, text=True)
    # verify exits 0 on unknown keys and only warns: any word about our units is a failure.
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "bambupi" in line] == []
    assert len(names) == 4


def test_service_unit_is_notify_with_watchdog_and_hardening() -> None:
    text = (IMAGE / "units/bambupi.service").read_text()
    for line in ("Type=notify", "WatchdogSec=60", "Restart=always", "User=bambupi", "SupplementaryGroups=gpio i2c",
                 "StateDirectory=bambupi", "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE"):
        assert line in text.splitlines(), line


# --- first boot ----------------------------------------------------------------------------------------------------


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    boot, root = tmp_path / "boot", tmp_path / "root"
    boot.mkdir()
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tbambupi\n")
    (root / "etc/hostname").write_text("bambupi\n")
    yield boot, root


def firstboot(boot: Path, root: Path) -> subprocess.CompletedProcess[str]:
    # The image runs it with the venv that holds bambupi; here the checkout is the package.
    env = {**os.environ, "BAMBUPI_BOOT": str(boot), "BAMBUPI_ROOT": str(root), "PYTHONPATH": str(IMAGE.parent)}
    return subprocess.run([sys.executable, str(IMAGE / "firstboot.py")], env=env, capture_output=True, text=True,
                          timeout=60)


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_no_secrets(boot: Path, result: subprocess.CompletedProcess[str]) -> None:
    for name, data in files_under(boot).items():
        for secret in (PASSWORD, ACCESS_CODE):
            assert secret.encode() not in data, f"{secret!r} left in {name}"
    for secret in (PASSWORD, ACCESS_CODE):
        assert secret not in result.stdout + result.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["unix", "windows"])
def test_first_boot_applies_a_good_file_and_leaves_no_secret_on_the_boot_partition(
    box: tuple[Path, Path], line_end: str
) -> None:
    boot, root = box
    raw = GOOD.replace("\n", line_end).encode()
    (boot / "bambupi.toml").write_bytes(b"\xef\xbb\xbf" + raw if line_end == "\r\n" else raw)  # Notepad adds a BOM
    result = firstboot(boot, root)
    assert result.returncode == 0, result.stderr
    assert "applied" in result.stdout

    installed = root / "etc/bambupi/bambupi.toml"
    assert mode(installed) == 0o600
    text = installed.read_text()
    assert "\r" not in text and PASSWORD in text and ACCESS_CODE in text
    assert 'listen = "0.0.0.0:80"' in text  # the image's port unless the file names one
    assert (root / "etc/hostname").read_text() == "workshop-box\n"
    assert (root / "etc/hosts").read_text() == "127.0.0.1\tlocalhost\n127.0.1.1\tworkshop-box\n"
    wifi = root / "etc/NetworkManager/system-connections/bambupi-wifi.nmconnection"
    assert mode(wifi) == 0o600
    assert "ssid=Home Net\n" in wifi.read_text() and f"psk={PASSWORD}\n" in wifi.read_text()
    country = (root / "etc/modprobe.d/bambupi-wifi-country.conf").read_text()
    assert country == "options cfg80211 ieee80211_regdom=GB\n"
    keys = root / "root/.ssh/authorized_keys"
    assert keys.read_text() == KEY + "\n" and mode(keys) == 0o600 and mode(keys.parent) == 0o700

    assert sorted(files_under(boot)) == ["bambupi-applied.toml"]
    applied = (boot / "bambupi-applied.toml").read_text()
    assert 'wifi_ssid = "Home Net"' in applied and "# wifi_password = (removed" in applied
    assert_no_secrets(boot, result)


def test_a_fixed_file_clears_the_oled_note(box: tuple[Path, Path]) -> None:
    boot, root = box
    (boot / "bambupi.toml").write_text(GOOD.replace('wifi_country = "gb"', ""))
    assert firstboot(boot, root).returncode == 1
    note = root / "var/lib/bambupi/setup-errors.txt"
    assert "system.wifi_country" in note.read_text()
    (boot / "bambupi.toml").write_text(GOOD)
    assert firstboot(boot, root).returncode == 0
    assert not note.exists()


def test_first_boot_without_wifi_or_key_turns_them_off(box: tuple[Path, Path]) -> None:
    boot, root = box
    (boot / "bambupi.toml").write_text(GOOD)
    assert firstboot(boot, root).returncode == 0
    (boot / "bambupi.toml").write_text('[system]\nhostname = "box2"\n\n[web]\nlisten = "0.0.0.0:8080"\n')
    result = firstboot(boot, root)
    assert result.returncode == 0, result.stderr
    assert not (root / "etc/NetworkManager/system-connections/bambupi-wifi.nmconnection").exists()
    assert not (root / "root/.ssh/authorized_keys").exists()
    assert 'listen = "0.0.0.0:8080"' in (root / "etc/bambupi/bambupi.toml").read_text()
    assert "SSH off" in result.stdout


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ('wifi_country = "gb"', "bambupi.toml:2: system.wifi_country: required with wifi_ssid"),
        ('hostname = "Workshop-Box"', "system.hostname: must be 1-63 letters"),
        ("[system]", "bambupi.toml"),  # a TOML syntax error
    ],
    ids=["missing-country", "bad-hostname", "syntax"],
)
def test_first_boot_with_errors_applies_nothing_and_says_why(
    box: tuple[Path, Path], broken: str, expected: str
) -> None:
    boot, root = box
    replacement = {"[system]": "[system", 'hostname = "Workshop-Box"': 'hostname = "work_shop"'}.get(broken, "")
    (boot / "bambupi.toml").write_text(GOOD.replace(broken, replacement).replace("\n", "\r\n"))
    before = files_under(root)
    result = firstboot(boot, root)
    assert result.returncode == 1
    # Nothing applied: the only new file is the note for the OLED, beside the database.
    after = files_under(root)
    oled_note = after.pop("var/lib/bambupi/setup-errors.txt")
    assert after == before
    assert expected.removeprefix("bambupi.toml:2: ") in oled_note.decode()
    assert PASSWORD.encode() not in oled_note and ACCESS_CODE.encode() not in oled_note
    assert mode(root / "var/lib/bambupi/setup-errors.txt") == 0o640
    assert sorted(files_under(boot)) == ["bambupi-errors.txt", "bambupi-rejected.toml"]
    report = (boot / "bambupi-errors.txt").read_text()
    assert "nothing was changed" in report and expected in report, report
    assert "# wifi_password = (removed" in (boot / "bambupi-rejected.toml").read_text()
    assert_no_secrets(boot, result)


def test_first_boot_without_a_file_does_nothing(box: tuple[Path, Path]) -> None:
    boot, root = box
    before = files_under(root)
    result = firstboot(boot, root)
    assert result.returncode == 0 and files_under(root) == before and files_under(boot) == {}


# --- systemd notify and watchdog ------------------------------------------------------------------------------------


def test_watchdog_interval_is_half_of_systemds_and_only_for_us() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}, 42) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "42"}, 42) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_interval({}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 42) is None


def notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


async def receive(sock: socket.socket, count: int, timeout_s: float) -> list[str]:
    messages: list[str] = []
    with trio.move_on_after(timeout_s):
        while len(messages) < count:
            await trio.lowlevel.wait_readable(sock)
            messages.append(sock.recv(4096).decode())
    return messages


async def test_service_sends_ready_then_watchdog_while_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(f"/tmp/bambupi-notify-{os.getpid()}.sock")  # AF_UNIX paths must stay short
    path.unlink(missing_ok=True)
    with notify_socket(path) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        config = Config(web=WebConfig(host="127.0.0.1", port=0))
        async with trio.open_nursery() as nursery:
            await nursery.start(Service(config, storage_folder=tmp_path).run)
            messages = await receive(sock, 3, 30)  # a hang bound: the watchdog ticks every 0.1 s
            nursery.cancel_scope.cancel()
    path.unlink()
    assert messages == ["READY=1", "WATCHDOG=1", "WATCHDOG=1"]


async def test_watchdog_stays_silent_while_the_web_app_does_not_answer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bambupi.watchdog")
    sent: list[str] = []
    checks: list[bool] = []
    release = threading.Event()

    def hung_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:  # the hub stopped answering
        release.wait()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    door = FrontDoor(hung_app, WebConfig(host="127.0.0.1", port=0), wsgi_threads=1)

    async def healthy(timeout_s: float) -> bool:
        checks.append(await door.serves("/healthz", timeout_s=timeout_s))
        return checks[-1]

    async with trio.open_nursery() as nursery:
        await nursery.start(door.run)
        await nursery.start(Watchdog(healthy, 0.1, sent.append).run)
        with trio.fail_after(30):  # three checks came and went unanswered (a count, not a time)
            while len(checks) < 3:
                await trio.sleep(0.01)
        assert sent == [] and checks[:3] == [False] * 3
        assert caplog.text.count("did not answer /healthz") == 1  # said once, not per check
        release.set()  # the app answers again: so do the keep-alives
        with trio.fail_after(30):
            while not sent:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert set(sent) == {"WATCHDOG=1"} and "answers /healthz again" in caplog.text


# --- updating a running box: install-venv.sh ------------------------------------------------------------------------


def fake_wheel(folder: Path, name: str, version: str, files: dict[str, str], scripts: str = "") -> Path:
    """A minimal pure-Python wheel, so the update script runs here without the Pi's aarch64 wheels."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/entry_points.txt": f"[console_scripts]\n{scripts}\n" if scripts else "",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


def update_bundle(folder: Path, version: str) -> Path:
    wheels = folder / f"wheels-{version}"
    wheels.mkdir()
    # check-config of the fake bambupi rejects a config that says "broken", as the real one rejects bad files.
    cli = ("import sys\n\ndef main():\n    text = open(sys.argv[-1]).read()\n"
           f"    print('bambupi {version} checked')\n    sys.exit(1 if 'broken' in text else 0)\n")
    fake_wheel(wheels, "bambupi", version, {"bambupi_fake/__init__.py": cli}, "bambupi = bambupi_fake:main")
    dep = fake_wheel(wheels, "bambupidep", "1.0", {"bambupidep.py": "VALUE = 1\n"})
    digest = hashlib.sha256(dep.read_bytes()).hexdigest()
    (wheels / "wheels.lock").write_text(f"bambupidep==1.0 --hash=sha256:{digest}\n")
    return wheels


def install_venv(wheels: Path, opt: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BAMBUPI_OPT": str(opt), "BAMBUPI_CONFIG": str(config), "PIP_NO_INDEX": "1"}
    return subprocess.run(["sh", str(IMAGE / "install-venv.sh"), str(wheels)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_update_installs_a_new_venv_switches_the_link_and_keeps_the_previous(tmp_path: Path) -> None:
    opt = tmp_path / "opt"
    opt.mkdir()
    config = tmp_path / "bambupi.toml"
    config.write_text("[web]\n")
    first = install_venv(update_bundle(tmp_path, "1.0.0"), opt, config)
    assert first.returncode == 0, first.stderr
    assert os.readlink(opt / "bambupi") == str(opt / "bambupi-1.0.0")
    assert "bambupi 1.0.0 checked" in first.stdout

    second = install_venv(update_bundle(tmp_path, "1.1.0"), opt, config)
    assert second.returncode == 0, second.stderr
    assert os.readlink(opt / "bambupi") == str(opt / "bambupi-1.1.0")
    assert (opt / "bambupi-1.0.0/bin/bambupi").exists()  # kept for a rollback
    ran = subprocess.run([str(opt / "bambupi/bin/bambupi"), str(config)], capture_output=True, text=True)
    assert ran.stdout.strip() == "bambupi 1.1.0 checked"

    # A version that rejects the box's config changes nothing.
    config.write_text("[web]\nbroken = true\n")
    rejected = install_venv(update_bundle(tmp_path, "1.2.0"), opt, config)
    assert rejected.returncode == 1
    assert "rejects" in rejected.stderr and "is unchanged" in rejected.stderr
    assert os.readlink(opt / "bambupi") == str(opt / "bambupi-1.1.0")
    assert not (opt / "bambupi-1.2.0").exists()

    # The next good update drops the oldest venv and keeps the one it replaces.
    config.write_text("[web]\n")
    third = install_venv(update_bundle(tmp_path, "1.3.0"), opt, config)
    assert third.returncode == 0, third.stderr
    assert sorted(p.name for p in opt.iterdir()) == ["bambupi", "bambupi-1.1.0", "bambupi-1.3.0"]
