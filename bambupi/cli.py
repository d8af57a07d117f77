"""The ``bambupi`` command: run, demo, sim, check-config, trust."""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import trio

from bambupi import __version__
from bambupi.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    cli_check_config,
    config_secrets,
    load_config,
    pins_path,
    resolve_storage_path,
)
from bambupi.printer.models import model_info
from bambupi.secret import Secret, redact
from bambupi.service import Running, Service

log = logging.getLogger("bambupi")

DEMO_SERIAL = "01P00A000000001"
DEMO_PORT = 8080
DEMO_CONFIG = """\
# bambupi demo: a simulated printer on this machine. Edit through the settings page or here.
[web]
listen = "{host}:{port}"

[[printer]]
id = "demo"
name = "Demo {model} (simulated)"
model = "{model}"
host = "127.0.0.1"
serial = "{serial}"
access_code = "{code}"
mqtt_port = {mqtt_port}{camera_line}

[printer.plug]   # a simulated Tasmota plug whose power follows the simulated printer's heaters and motors
kind = "tasmota"
address = "{plug_url}"
price_per_kwh = 0.30
currency = "EUR"
auto_off = true

[panel]
oled = "virtual"   # a simulated OLED, LEDs, buzzer and button, mirrored at /api/panel and /api/panel.png
gpio = "virtual"

[storage]
path = "{folder}/bambupi.sqlite3"

[discovery]
enabled = false   # the demo's printer is local; keep UDP 2021 free for a real box on this machine
"""


Secrets = Sequence[Secret] | Callable[[], Sequence[Secret]]


class RedactingFilter(logging.Filter):
    """Last line of defence: masks known secrets in every log record, its message and its traceback.

    ``secrets_`` may be a function, asked at every record: the running service's secrets change when the settings
    page saves new ones.
    """

    def __init__(self, secrets_: Secrets) -> None:
        super().__init__()
        fixed = tuple(secrets_) if not callable(secrets_) else ()
        self._secrets: Callable[[], Sequence[Secret]] = secrets_ if callable(secrets_) else lambda: fixed

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(s for s in self._secrets() if s)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets_ = self.secrets
        if not secrets_:
            return True
        message = record.getMessage()
        masked = redact(message, *secrets_)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info:
            # The formatter uses exc_text when it is set: format the traceback here, masked.
            record.exc_text = redact(record.exc_text or _TRACEBACKS.formatException(record.exc_info), *secrets_)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, *secrets_)
        return True


_TRACEBACKS = logging.Formatter()


def setup_logging(verbose: bool, secrets_: Secrets = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets_))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


async def _until_signalled(start: Callable[[trio.Nursery], Awaitable[None]]) -> None:
    """Run ``start(nursery)``'s services until SIGINT or SIGTERM, then cancel them cleanly."""
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await start(nursery)
            async for signum in signals:
                log.info("%s received: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def _load(path: Path) -> Config:
    try:
        config, problems = load_config(path)
    except ConfigError as exc:
        print(f"bambupi: configuration has errors, not starting:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for problem in problems:
        log.warning("%s", problem)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    service: Service | None = None
    # The service's current config: secrets saved on the settings page are masked from then on.
    setup_logging(args.verbose, lambda: config_secrets(service.config if service is not None else config))
    storage = resolve_storage_path(config.storage.path, explicit=True)
    service = Service(config, storage_folder=storage.parent)

    async def start(nursery: trio.Nursery) -> None:
        assert service is not None
        await nursery.start(service.run)

    trio.run(_until_signalled, start)
    return 0


def _free_port(preferred: int) -> int:
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", preferred))
        except OSError:
            return 0
    return preferred


def cmd_demo(args: argparse.Namespace) -> int:
    from bambupi.sim.broker import Simulator
    from bambupi.sim.plug import SimulatedPlug

    access_code = Secret("".join(secrets.choice("0123456789") for _ in range(8)))
    setup_logging(args.verbose, [access_code])
    port = args.port if args.port is not None else _free_port(DEMO_PORT)

    async def start(nursery: trio.Nursery) -> None:
        folder = Path(tempfile.mkdtemp(prefix="bambupi-demo-"))
        nursery.start_soon(_remove_on_exit, folder)
        # The simulated camera speaks the P1/A1 port-6000 protocol; an RTSPS model's demo shows "Liveview off".
        has_camera = model_info(args.model).camera_kind == "tls6000"
        sim = Simulator(
            args.model, DEMO_SERIAL, access_code.reveal(), mqtt_port=0, scenario=args.scenario,
            time_scale=args.time_scale, camera_port=0 if has_camera else None,
        )
        await nursery.start(sim.run)
        plug: SimulatedPlug = await nursery.start(SimulatedPlug(sim.printer).run)
        camera_line = f"\ncamera_port = {sim.camera_port}" if has_camera else ""
        # A real config file, so the demo's settings page can edit it like a box's.
        config_path = folder / "bambupi.toml"
        config_path.write_text(
            DEMO_CONFIG.format(
                host=args.host, port=port, model=args.model, serial=DEMO_SERIAL, code=access_code.reveal(),
                mqtt_port=sim.mqtt_port, camera_line=camera_line, plug_url=plug.url, folder=folder,
            )
        )
        config, _ = load_config(config_path)
        running: Running = await nursery.start(Service(config, storage_folder=folder).run)
        print(f"\n  bambupi demo is running: open {running.url}\n  (state in {folder}; Ctrl-C to stop)\n", flush=True)

    trio.run(_until_signalled, start)
    return 0


async def _remove_on_exit(folder: Path) -> None:
    import shutil

    try:
        await trio.sleep_forever()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def cmd_sim(args: argparse.Namespace) -> int:
    from bambupi.sim.broker import Simulator

    setup_logging(args.verbose, [Secret(args.access_code)])

    async def start(nursery: trio.Nursery) -> None:
        sim = Simulator(
            args.model, args.serial, args.access_code, host=args.host, mqtt_port=args.mqtt_port,
            scenario=args.scenario, time_scale=args.time_scale, camera_port=args.camera_port,
        )
        await nursery.start(sim.run)
        camera = f", camera (port-6000 protocol) on {args.host}:{sim.camera_port}" if sim.camera is not None else ""
        print(f"simulated {args.model} {args.serial}: MQTT/TLS on {args.host}:{sim.mqtt_port}{camera}", flush=True)

    trio.run(_until_signalled, start)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    return cli_check_config(args.config, sys.stdout)


def cmd_trust(args: argparse.Namespace) -> int:
    from bambupi.printer.link import probe_fingerprint
    from bambupi.printer.pins import PinStore, camera_pin_key

    config = _load(args.config)
    setup_logging(args.verbose, config_secrets(config))
    printer = next((p for p in config.printers if p.id == args.printer_id), None)
    if printer is None:
        known = ", ".join(p.id for p in config.printers) or "none"
        print(f"bambupi: no printer {args.printer_id!r} in {args.config} (configured: {known})", file=sys.stderr)
        return 1
    pins = PinStore(pins_path(config))
    try:
        seen = trio.run(probe_fingerprint, printer)
    except (OSError, trio.TooSlowError) as exc:
        why = str(exc) or "timeout"
        print(f"bambupi: cannot reach {printer.host}:{printer.mqtt_port}: {why}", file=sys.stderr)
        return 1
    old = pins.get(printer.id)
    pins.set(printer.id, seen)
    pins.forget(camera_pin_key(printer.id))  # the camera's is taken afresh at its next connection
    print(f"{printer.id}: now trusting {seen}" + (f" (was {old})" if old and old != seen else ""))
    if printer.tls_fingerprint:
        print(
            f"note: {args.config} pins printer.tls_fingerprint for {printer.id}; it takes precedence, "
            f"so set it to \"{seen}\" or remove it",
        )
    return 0


def _read_new_password() -> str:
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("New admin password: ")
        if getpass.getpass("Again: ") != first:
            raise SystemExit("bambupi: the two passwords differ; nothing changed")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_set_password(args: argparse.Namespace) -> int:
    from bambupi.config_file import ConfigWriteError, set_password_hash
    from bambupi.passwords import hash_password, password_problem

    password = _read_new_password()
    problem = password_problem(password)
    if problem is not None:
        print(f"bambupi: password {problem}; nothing changed", file=sys.stderr)
        return 1
    try:
        set_password_hash(args.config, hash_password(password))
    except ConfigWriteError as exc:
        print(f"bambupi: {args.config} has errors, fix them first:\n{exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"bambupi: cannot write {args.config}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"admin password set in {args.config} (restart bambupi for a running service to use it)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bambupi", description="A glance box for Bambu Lab printers.")
    parser.add_argument("--version", action="version", version=f"bambupi {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG_PATH, help="config file (TOML)")

    p = sub.add_parser("run", help="run the service")
    with_config(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run the service against a built-in simulated printer")
    p.add_argument("--port", type=int, default=None, help=f"web port (default {DEMO_PORT}, or a free one)")
    p.add_argument("--host", default="0.0.0.0", help="web address to listen on")
    p.add_argument("--model", default="P1S")
    p.add_argument("--scenario", default="print")
    p.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real second")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sim", help="run a simulated printer")
    p.add_argument("--model", default="P1S")
    p.add_argument("--serial", default=DEMO_SERIAL)
    p.add_argument("--access-code", default="12345678")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=8883)
    p.add_argument(
        "--camera-port", type=int, default=None, help="serve the port-6000 camera (0 = any free port; default none)"
    )
    p.add_argument("--scenario", default="print")
    p.add_argument("--time-scale", type=float, default=1.0)
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("check-config", help="validate a config file")
    with_config(p)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("set-password", help="set the admin password (reads it from the terminal or stdin)")
    with_config(p)
    p.set_defaults(func=cmd_set_password)

    p = sub.add_parser("trust", help="accept a printer's new TLS certificate")
    with_config(p)
    p.add_argument("printer_id")
    p.set_defaults(func=cmd_trust)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("check-config", "set-password"):
        return int(args.func(args))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    return int(args.func(args))
