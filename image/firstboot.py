"""First boot of the SD-card image: apply the ``bambupi.toml`` the user put on the FAT boot partition.

Run by bambupi-firstboot.service (with the venv's Python, so the service's own checker validates the file) whenever
``bambupi.toml`` is on the boot partition. A good file is copied to ``/etc/bambupi/bambupi.toml`` (0600, the
service's user), its ``[system]`` section applied (hostname, Wi-Fi, SSH key) and the boot copy replaced by
``bambupi-applied.toml`` without secrets. A file with errors changes nothing: the errors go to
``bambupi-errors.txt`` and the file becomes ``bambupi-rejected.toml``, also without secrets, because anyone who
takes the card out can read the boot partition.

Paths come from BAMBUPI_BOOT (default /boot/firmware) and BAMBUPI_ROOT (default /), so tests run it on folders.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
from pathlib import Path

import tomlkit

from bambupi.atomic_file import write_atomically
from bambupi.config import DEFAULT_STORAGE_PATH, SECRET_KEYS, SETUP_ERRORS_FILE_NAME, Config, errors, parse_config
from bambupi.secret import Secret

NAME = "bambupi.toml"
SERVICE_USER = "bambupi"
IMAGE_LISTEN = "0.0.0.0:80"  # the image's service answers on port 80 (the unit grants CAP_NET_BIND_SERVICE)
_SECRET_LINE = re.compile(rf"^(\s*)({'|'.join(sorted(SECRET_KEYS))})\s*=.*$")


def normalise(raw: bytes) -> str:
    """The file as text with Unix line endings: Windows editors add CRLF and sometimes a byte-order mark."""
    return raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")


def without_secrets(text: str) -> str:
    """Each secret's line replaced by a comment (line by line, so it works on a file TOML cannot even read)."""
    return "\n".join(
        _SECRET_LINE.sub(r"\1# \2 = (removed from the boot partition; it is on the box)", line)
        for line in text.split("\n")
    )


def with_image_listen(text: str) -> str:
    """The image serves on port 80 unless the file says otherwise."""
    document = tomlkit.parse(text)
    web = document.setdefault("web", tomlkit.table())
    if "listen" not in web:
        web["listen"] = IMAGE_LISTEN
    return tomlkit.dumps(document)


def write_private(path: Path, text: str, *, owner: str | None = None, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with ``text``, created with ``mode`` (never readable by others, even briefly)."""
    write_atomically(path, text.encode("utf-8"), mode=mode, owner=None if owner is None else _user_ids(owner))


def _user_ids(name: str) -> tuple[int, int] | None:
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        return None  # a test's folder: the image always has the service user
    return user.pw_uid, user.pw_gid


def apply_system(config: Config, etc: Path, root_home: Path) -> list[str]:
    """Write the ``[system]`` settings into the system's files; returns what was done, for the log."""
    system = config.system
    done = [f"hostname {system.hostname}"]
    # A power cut during first boot must not leave an empty hostname or hosts file behind.
    write_private(etc / "hostname", system.hostname + "\n", mode=0o644)
    hosts = etc / "hosts"
    lines = hosts.read_text().splitlines() if hosts.exists() else ["127.0.0.1\tlocalhost"]
    lines = [line for line in lines if not line.startswith("127.0.1.1")]
    write_private(hosts, "\n".join([*lines, f"127.0.1.1\t{system.hostname}"]) + "\n", mode=0o644)

    country_file = etc / "modprobe.d" / "bambupi-wifi-country.conf"
    wifi_file = etc / "NetworkManager" / "system-connections" / "bambupi-wifi.nmconnection"
    if system.wifi_ssid is not None and system.wifi_country is not None:
        write_private(country_file, f"options cfg80211 ieee80211_regdom={system.wifi_country}\n", mode=0o644)
        write_private(wifi_file, nm_wifi_connection(system.wifi_ssid, system.wifi_password))
        done.append(f"Wi-Fi {system.wifi_ssid!r} ({system.wifi_country})")
    else:
        wifi_file.unlink(missing_ok=True)
        country_file.unlink(missing_ok=True)
        done.append("no Wi-Fi (Ethernet only)")

    keys = root_home / ".ssh" / "authorized_keys"
    if system.ssh_authorized_key is not None:
        keys.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(keys, system.ssh_authorized_key + "\n")
        done.append("SSH on for the given key (user root)")
    else:
        keys.unlink(missing_ok=True)
        done.append("SSH off")
    return done


def nm_wifi_connection(ssid: str, password: Secret | None) -> str:
    """A NetworkManager keyfile for the network (no password: an open network)."""
    lines = [
        "[connection]", "id=bambupi-wifi", "type=wifi", "autoconnect=true", "",
        "[wifi]", "mode=infrastructure", f"ssid={_keyfile_escape(ssid)}", "",
    ]
    if password is not None:
        lines += ["[wifi-security]", "key-mgmt=wpa-psk", f"psk={_keyfile_escape(password.reveal())}", ""]
    lines += ["[ipv4]", "method=auto", "", "[ipv6]", "method=auto", ""]
    return "\n".join(lines)


def _keyfile_escape(value: str) -> str:
    # GKeyFile values: backslash escapes for backslash, leading spaces and line breaks; ';' is literal for strings.
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def run(boot: Path, root: Path) -> int:
    source = boot / NAME
    if not source.exists():
        print(f"firstboot: no {source}, nothing to do")
        return 0
    text = normalise(source.read_bytes())
    setup_errors = root / DEFAULT_STORAGE_PATH.parent.relative_to("/") / SETUP_ERRORS_FILE_NAME
    config, problems = parse_config(text, source=NAME)
    (boot / "bambupi-errors.txt").unlink(missing_ok=True)
    if config is None or errors(problems):
        report = "\n".join(str(p) for p in problems)
        (boot / "bambupi-errors.txt").write_text(
            "bambupi could not use bambupi.toml; nothing was changed on the box.\n"
            "Fix these, save the file as bambupi.toml again (passwords were removed from the copy), restart:\n\n"
            + report + "\n"
        )
        (boot / "bambupi-rejected.toml").write_text(without_secrets(text))
        # For the OLED (the service cannot read the boot partition): problems name keys, never values.
        write_private(setup_errors, "\n".join(str(p) for p in errors(problems)) + "\n", owner=SERVICE_USER,
                      mode=0o640)
        source.unlink()
        print(f"firstboot: {NAME} has errors, nothing applied:\n{report}", file=sys.stderr)
        return 1
    etc = root / "etc"
    write_private(etc / "bambupi" / NAME, with_image_listen(text), owner=SERVICE_USER)
    done = apply_system(config, etc, root / "root")
    setup_errors.unlink(missing_ok=True)
    (boot / "bambupi-applied.toml").write_text(
        "# Applied to the box by its first boot; secrets were removed. To change settings, edit this file,\n"
        "# put the secrets back, save it as bambupi.toml and restart the box (or use the settings page).\n"
        + without_secrets(text)
    )
    source.unlink()
    print("firstboot: applied " + NAME + ": " + "; ".join(done))
    return 0


def main() -> int:
    boot = Path(os.environ.get("BAMBUPI_BOOT", "/boot/firmware"))
    root = Path(os.environ.get("BAMBUPI_ROOT", "/"))
    return run(boot, root)


if __name__ == "__main__":
    sys.exit(main())
