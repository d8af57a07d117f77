"""The ``bambupi`` command: run, demo, sim, check-config, trust."""

from __future__ import annotations

import argparse
import errno
import logging
import secrets
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

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
from bambupi.jobfile.fetch import FTPS_PORT
from bambupi.printer_models import model_info
from bambupi.secret import Secret, redact
from bambupi.service import Running, Service
from bambupi.sim.printer import PROFILES, profile_for
from bambupi.sim.scenarios import SCENARIOS

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
mqtt_port = {mqtt_port}{port_lines}

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

[facade]          # other apps can watch the simulated printer through the box (docs/facade.md)
enabled = true
host = "{host}"
mqtt_port = {facade_mqtt_port}
camera_port = {facade_camera_port}
access_code = "{facade_code}"
"""
DEMO_FACADE_MQTT_PORT = 8883  # as on a printer, when free
DEMO_FACADE_CAMERA_PORT = 6000


Secrets = Sequence[Secret] | Callable[[], Sequence[Secret]]


class StartupError(Exception):
    """A part could not start for a reason the user can fix (a port in use, a host name that does not resolve).

    Its message is the one line the user sees: a traceback would bury it.
    """


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError ``exc`` is, or holds alone: trio hands a task's error up wrapped in one group per nursery."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None


def _why(exc: OSError) -> str:
    why = exc.strerror or str(exc)
    if exc.filename is not None:
        why = f"{why}: {exc.filename}"
    if exc.errno == errno.EADDRINUSE:
        why += " (another program, or another bambupi, listens there)"
    elif exc.errno == errno.EACCES and exc.filename is None:
        why += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    return why


async def _start(nursery: trio.Nursery, what: str, run: Callable[..., Awaitable[object]]) -> Any:
    """``nursery.start(run)``; an OSError before ``run`` is ready (binding, resolving) becomes a StartupError."""
    try:
        return await nursery.start(run)
    except BaseException as exc:
        cause = _os_error(exc)
        if cause is None:
            raise
        raise StartupError(f"cannot start {what}: {_why(cause)}") from None


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


async def _until_signalled(start: Callable[[trio.Nursery], Awaitable[None]]) -> str | None:
    """Run ``start(nursery)``'s services until SIGINT or SIGTERM, then cancel them cleanly.

    Returns why they could not start (a :class:`StartupError`), or None after a signal.
    """
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            try:
                await start(nursery)
            except StartupError as exc:
                nursery.cancel_scope.cancel()  # what did start stops, cleanly
                return str(exc)
            async for signum in signals:
                log.info("%s received: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    return None


def _serve(start: Callable[[trio.Nursery], Awaitable[None]]) -> int:
    """Run ``start``'s services until signalled: 0 then, or 1 with one line on stderr when they could not start."""
    problem = trio.run(_until_signalled, start)
    if problem is None:
        return 0
    print(f"bambupi: {problem}", file=sys.stderr)
    return 1


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
        await _start(nursery, f"the service (web.listen = {config.web.host}:{config.web.port})", service.run)

    return _serve(start)


def _bindable(host: str, port: int) -> bool:
    """Whether this process may listen on ``host:port`` now (a port below 1024 needs privileges)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


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
    from bambupi.sim.plug import SimulatedPlug
    from bambupi.sim.simulator import Simulator

    access_code = Secret("".join(secrets.choice("0123456789") for _ in range(8)))
    # The facade's own code: letters and digits, so never the printer's (digits only).
    facade_code = Secret("demo" + "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(4)))
    setup_logging(args.verbose, [access_code, facade_code])
    port = args.port if args.port is not None else _free_port(DEMO_PORT)

    async def start(nursery: trio.Nursery) -> None:
        folder = Path(tempfile.mkdtemp(prefix="bambupi-demo-"))
        nursery.start_soon(_remove_on_exit, folder)
        # The simulated camera: the port-6000 protocol for P1/A1, RTSPS for the others (encoded with ffmpeg; without
        # it an RTSPS model's demo shows "LAN Only Liveview" off).
        rtsps = model_info(args.model).camera_kind == "rtsps"
        sim = Simulator(
            args.model, DEMO_SERIAL, access_code.reveal(), mqtt_port=0, scenario=args.scenario,
            time_scale=args.time_scale, camera_port=None if rtsps else 0, rtsps_port=0 if rtsps else None,
            ftps_port=0,
        )
        await _start(nursery, "the simulated printer", sim.run)
        plug: SimulatedPlug = await _start(nursery, "the simulated plug", SimulatedPlug(sim.printer).run)
        camera_port = sim.rtsps_port if sim.rtsps is not None else sim.camera_port if sim.camera is not None else None
        has_camera = camera_port is not None
        port_lines = f"\ncamera_port = {camera_port}" if has_camera else ""
        # The job's 3MF (filament grams, the plate picture) comes over the simulator's FTPS, as from a printer.
        port_lines += f"\nftps_port = {sim.ftps_port}"
        # A real config file, so the demo's settings page can edit it like a box's.
        config_path = folder / "bambupi.toml"
        config_path.write_text(
            DEMO_CONFIG.format(
                host=args.host, port=port, model=args.model, serial=DEMO_SERIAL, code=access_code.reveal(),
                mqtt_port=sim.mqtt_port, port_lines=port_lines, plug_url=plug.url, folder=folder,
                facade_mqtt_port=_free_port(DEMO_FACADE_MQTT_PORT),
                facade_camera_port=_free_port(DEMO_FACADE_CAMERA_PORT) if has_camera else 0,
                facade_code=facade_code.reveal(),
            )
        )
        config, _ = load_config(config_path)
        running: Running = await _start(
            nursery, f"the web page on {args.host}:{port}", Service(config, storage_folder=folder).run
        )
        print(f"\n  bambupi demo is running: open {running.url}\n  (state in {folder}; Ctrl-C to stop)", flush=True)
        print(_facade_lines(running, args.host, facade_code), flush=True)

    return _serve(start)


def _facade_lines(running: Running, host: str, code: Secret) -> str:
    """How to point another app at the demo's printer through the facade (docs/facade.md): on the terminal only."""
    mqtt_port, camera_port = running.facade.mqtt_port, running.facade.camera_port("demo")
    if mqtt_port is None:
        return "  (the printer facade did not start: see the log)\n"
    where = "this machine's address" if host in ("0.0.0.0", "::") else host
    camera = f", camera port {camera_port}" if camera_port is not None else ""
    return (
        f"  apps (ha-bambulab, bambulabs_api, ESP32 screens) can use the printer through the box: host = {where},\n"
        f"  MQTT port {mqtt_port}{camera}, serial {DEMO_SERIAL}, access code {code.reveal()}\n"
    )


async def _remove_on_exit(folder: Path) -> None:
    import shutil

    try:
        await trio.sleep_forever()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def cmd_sim(args: argparse.Namespace) -> int:
    from bambupi.sim.simulator import Simulator

    setup_logging(args.verbose, [Secret(args.access_code)])

    ftps_port = args.ftps_port
    if ftps_port is None:  # the default: a printer's port, when this user may have it
        ftps_port = FTPS_PORT if _bindable(args.host, FTPS_PORT) else None
        if ftps_port is None:
            print(f"bambupi sim: FTPS off: port {FTPS_PORT} cannot be bound here (it needs root or "
                  f"CAP_NET_BIND_SERVICE, or it is in use); --ftps-port N serves it elsewhere", file=sys.stderr)

    async def start(nursery: trio.Nursery) -> None:
        sim = Simulator(
            args.model, args.serial, args.access_code, host=args.host, mqtt_port=args.mqtt_port,
            scenario=args.scenario, time_scale=args.time_scale, camera_port=args.camera_port, ftps_port=ftps_port,
            rtsps_port=args.rtsps_port,
        )
        ports = f"MQTT port {args.mqtt_port}" + (f", camera port {args.camera_port}" if args.camera_port else "")
        ports += f", FTPS port {args.ftps_port}" if args.ftps_port is not None else ""
        await _start(nursery, f"the simulated printer on {args.host} ({ports})", sim.run)
        ftps = f", FTPS (implicit TLS) on {args.host}:{sim.ftps_port}" if sim.ftps is not None else ""
        camera = f", camera (port-6000 protocol) on {args.host}:{sim.camera_port}" if sim.camera is not None else ""
        if sim.rtsps is not None:
            camera += f", camera (RTSPS) on rtsps://{args.host}:{sim.rtsps_port}/streaming/live/1"
        print(f"simulated {args.model} {args.serial}: MQTT/TLS on {args.host}:{sim.mqtt_port}{ftps}{camera}",
              flush=True)  # fmt: skip

    return _serve(start)


def cmd_check_config(args: argparse.Namespace) -> int:
    return cli_check_config(args.config, sys.stdout)


def cmd_trust(args: argparse.Namespace) -> int:
    from bambupi.printer.tls_pins import PinStore
    from bambupi.printer.trust import Unreachable, trust_current_certificate

    config = _load(args.config)
    setup_logging(args.verbose, config_secrets(config))
    printer = next((p for p in config.printers if p.id == args.printer_id), None)
    if printer is None:
        known = ", ".join(p.id for p in config.printers) or "none"
        print(f"bambupi: no printer {args.printer_id!r} in {args.config} (configured: {known})", file=sys.stderr)
        return 1
    try:
        trusted = trio.run(trust_current_certificate, printer, PinStore(pins_path(config)))
    except Unreachable as exc:
        print(f"bambupi: {exc}", file=sys.stderr)
        return 1
    if trusted.problem is not None:
        print(f"bambupi: {trusted.problem}; nothing changed", file=sys.stderr)
        return 1
    seen, was = trusted.fingerprint, trusted.previous
    print(f"{printer.id}: now trusting {seen}" + (f" (was {was})" if was and was != seen else ""))
    if trusted.overridden:
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
    from bambupi.config.file import ConfigWriteError, set_password_hash
    from bambupi.passwords import hash_password, password_problem

    if not args.config.is_file():
        # A mistyped path would otherwise become a new file the service never reads, and "password set".
        print(f"bambupi: no config file {args.config}; nothing changed (pass the service's file with -c)",
              file=sys.stderr)
        return 1
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
    print(f"admin password set in {args.config} (a running bambupi uses it at once and ends every login session)")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is answered with one line that names it, not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {port}")
    return port


def _time_scale(text: str) -> float:
    try:
        scale = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < scale < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return scale


def _sim_model(text: str) -> str:
    """A model the simulator has a profile for, as the simulator names it ("a1 mini" -> "A1MINI")."""
    try:
        return profile_for(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _simulator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", type=_sim_model, default="P1S", metavar="MODEL",
        help=f"the simulated printer: {', '.join(PROFILES)} (default P1S)",
    )
    p.add_argument(
        "--scenario", choices=tuple(SCENARIOS), default="print", metavar="SCENARIO",
        help=f"what it does: {', '.join(SCENARIOS)} (default print)",
    )
    p.add_argument(
        "--time-scale", type=_time_scale, default=1.0, help="simulated seconds per real second (default 1)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bambupi", description="A glance box for Bambu Lab printers.")
    parser.add_argument("--version", action="version", version=f"bambupi {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG_PATH, help="config file (TOML)")

    p = sub.add_parser("run", help="run the service")
    with_config(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run the service against a built-in simulated printer")
    p.add_argument("--port", type=_port, default=None, help=f"web port (default {DEMO_PORT}, or a free one)")
    p.add_argument("--host", default="0.0.0.0", help="web address to listen on")
    _simulator_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sim", help="run a simulated printer")
    p.add_argument("--serial", default=DEMO_SERIAL)
    p.add_argument("--access-code", default="12345678")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=_port, default=8883, help="0 = any free port (default 8883)")
    p.add_argument(
        "--camera-port", type=_port, default=None, help="serve the port-6000 camera (0 = any free port; default none)"
    )
    p.add_argument(
        "--rtsps-port", type=_port, default=None,
        help="X1/H2/P2 models: serve the RTSPS camera, H.264 encoded with ffmpeg (0 = any free port; default none)",
    )
    p.add_argument(
        "--ftps-port", type=_port, default=None,
        help=f"serve the job's 3MF over implicit FTPS (0 = any free port; default {FTPS_PORT}, off when that port "
        "cannot be bound)",
    )
    _simulator_options(p)
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
    if args.command not in ("check-config", "set-password"):
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        # Ctrl-C before the services listen for it (loading, at a password prompt): a stop, not a crash.
        print(file=sys.stderr)
        return 130
