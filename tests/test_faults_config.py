"""Broken config files as people make them (issue 14, item 3): a key written twice, Notepad's byte-order mark.

Through the real command line (``python -m bambupi check-config`` and ``run`` in a subprocess) and the SD card's
first boot (``image/firstboot.py`` on a temp folder): every bad file gets one message naming the key path and line,
check-config exits 1, run stops with a one-line config error, and no access code is ever printed or left on the card.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bambupi.config import parse_config
from bambupi.config.file import ConfigWriteError, read_document

IMAGE = Path(__file__).resolve().parent.parent / "image"
HANG_S = 60
CODE_1 = "11112222"
CODE_2 = "33334444"
PRINTER = f"""[web]
listen = "127.0.0.1:0"

[[printer]]
id = "workshop"
model = "P1S"
host = "127.0.0.1"
serial = "01P00A000000001"
access_code = "{CODE_1}"
access_code = "{CODE_2}"
"""
# (file text, the message expected, whether tomlkit raised KeyAlreadyPresent or a ParseError before)
DUPLICATES = {
    "key-in-array-table": (PRINTER, "bambupi.toml:10: printer[0].access_code: duplicate key: already set on line 9"),
    "top-level-table": ('[web]\nlisten = "127.0.0.1:0"\n\n[web]\nsession_hours = 2\n',
                        "bambupi.toml:4: web: duplicate key: already set on line 1"),
    "key-in-table": ('[web]\nlisten = "127.0.0.1:0"\nlisten = "127.0.0.1:1"\n',
                     "bambupi.toml:3: web.listen: duplicate key: already set on line 2"),
    "sub-table": (
        PRINTER.replace(f'access_code = "{CODE_2}"\n', '[printer.plug]\nkind = "tasmota"\naddress = "10.0.0.9"\n'
                        '[printer.plug]\nkind = "tasmota"\n'),
        "bambupi.toml:13: printer[0].plug: duplicate key: already set on line 10",
    ),
}


def bambupi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bambupi", *args], capture_output=True, text=True, timeout=HANG_S)


def assert_no_code(text: str) -> None:
    assert CODE_1 not in text and CODE_2 not in text, text


@pytest.mark.parametrize("name", DUPLICATES)
def test_a_duplicate_key_is_named_with_its_line(name: str) -> None:
    text, expected = DUPLICATES[name]
    config, problems = parse_config(text)
    assert config is None
    assert [str(p) for p in problems] == [expected]


def test_check_config_names_a_duplicate_access_code_without_quoting_either(tmp_path: Path) -> None:
    path = tmp_path / "bambupi.toml"
    path.write_text(PRINTER)
    done = bambupi("check-config", "-c", str(path))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr == ""
    assert done.stdout.splitlines() == [
        f"{path}:10: printer[0].access_code: duplicate key: already set on line 9",
        f"{path}: 1 error",
    ]
    assert_no_code(done.stdout + done.stderr)


def test_run_stops_on_a_duplicate_key_with_the_config_error_only(tmp_path: Path) -> None:
    path = tmp_path / "bambupi.toml"
    path.write_text(PRINTER)
    done = bambupi("run", "-c", str(path))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"{path}:10: printer[0].access_code: duplicate key" in done.stderr
    assert_no_code(done.stdout + done.stderr)


def test_a_byte_order_mark_is_accepted_by_check_config_and_run(tmp_path: Path) -> None:
    path = tmp_path / "bambupi.toml"
    good = PRINTER.replace(f'access_code = "{CODE_2}"\n', "")
    path.write_bytes(b"\xef\xbb\xbf" + good.replace("\n", "\r\n").encode())
    done = bambupi("check-config", "-c", str(path))
    assert (done.returncode, done.stdout.strip()) == (0, "OK: 1 printer"), done.stdout + done.stderr
    # And a BOM in front of a broken file still gives the real problem, on the real line.
    path.write_bytes(b"\xef\xbb\xbf" + PRINTER.encode())
    done = bambupi("check-config", "-c", str(path))
    assert f"{path}:10: printer[0].access_code: duplicate key" in done.stdout
    assert "Empty key" not in done.stdout


def test_first_boot_rejects_a_duplicate_key_and_keeps_no_access_code_on_the_card(tmp_path: Path) -> None:
    boot, root = tmp_path / "boot", tmp_path / "root"
    boot.mkdir()
    (root / "etc").mkdir(parents=True)
    (boot / "bambupi.toml").write_bytes(b"\xef\xbb\xbf" + PRINTER.replace("\n", "\r\n").encode())  # Notepad's way
    env = {**os.environ, "BAMBUPI_BOOT": str(boot), "BAMBUPI_ROOT": str(root), "PYTHONPATH": str(IMAGE.parent)}
    done = subprocess.run([sys.executable, str(IMAGE / "firstboot.py")], env=env, capture_output=True, text=True,
                          timeout=HANG_S)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in boot.iterdir()) == ["bambupi-errors.txt", "bambupi-rejected.toml"]
    report = (boot / "bambupi-errors.txt").read_text()
    assert "bambupi.toml:10: printer[0].access_code: duplicate key: already set on line 9" in report
    assert not (root / "etc/bambupi").exists()  # nothing applied
    oled_note = root / "var/lib/bambupi/setup-errors.txt"
    assert "printer[0].access_code: duplicate key" in oled_note.read_text()
    for path in [*boot.iterdir(), oled_note]:
        assert_no_code(path.read_text())
    assert_no_code(done.stdout + done.stderr)


def test_the_settings_page_reads_a_bom_file_and_names_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "bambupi.toml"
    path.write_bytes(b"\xef\xbb\xbf" + PRINTER.replace(f'access_code = "{CODE_2}"\n', "").encode())
    assert read_document(path)["printer"][0]["id"] == "workshop"
    path.write_text(PRINTER)
    with pytest.raises(ConfigWriteError) as refused:
        read_document(path)
    assert [str(p) for p in refused.value.problems] == [
        "bambupi.toml:10: printer[0].access_code: duplicate key: already set on line 9"
    ]
    assert_no_code(str(refused.value))
