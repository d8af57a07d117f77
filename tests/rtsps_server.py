"""A local RTSPS server for the camera tests and the decoder bench: GStreamer's RTSP server with a self-signed
certificate, serving a test H.264 stream at ``/streaming/live/1`` behind ``bblp``/password auth, like an X1/H2/P2
printer's port 322.

Runs under the system Python (it needs ``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0``, which the venv does not
have): ``/usr/bin/python3 tests/rtsps_server.py CERT KEY [--digest] [--size WxH] [--fps N] [--pattern P]
[--kbps N]`` with the password on its standard input (never in its arguments: the tests check that no process shows
it). It prints ``PORT <n>`` once it listens. ``--digest`` asks for Digest authentication only, as the printers'
LIVE555 server does (it ignores Basic); without it the server asks for Basic.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},framerate={fps}/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={key} bitrate={kbps} "
    "! rtph264pay name=pay0 pt=96 )"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cert")
    parser.add_argument("key")
    parser.add_argument("--digest", action="store_true")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--pattern", default="ball")  # the bench uses "snow": a detailed picture costs more to decode
    parser.add_argument("--kbps", type=int, default=2048)
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    password = sys.stdin.readline().strip()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    with open(args.cert) as cert, open(args.key) as key:
        certificate = Gio.TlsCertificate.new_from_pem(cert.read() + key.read(), -1)
    auth = GstRtspServer.RTSPAuth()
    auth.set_tls_certificate(certificate)
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "bblp")
    if args.digest:
        auth.add_digest("bblp", password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic("bblp", password), token)
    server.set_auth(auth)

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        PIPELINE.format(width=width, height=height, fps=args.fps, key=args.fps, pattern=args.pattern, kbps=args.kbps)
    )
    factory.set_shared(True)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("bblp", "media.factory.access", True)
    permissions.add_permission_for_role("bblp", "media.factory.construct", True)
    factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/streaming/live/1", factory)

    server.attach(None)
    print(f"PORT {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
