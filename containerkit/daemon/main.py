"""``containerkitd``: load the config, open the sockets, serve until SIGTERM or SIGINT.

Stopping the daemon stops only the daemon: containers belong to their shims and keep running;
the next daemon on the same root finds them again (and resumes watching their exits).
"""

from __future__ import annotations

import grp
import logging
import os
import resource
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from containerkit.daemon.app import DaemonApp
from containerkit.daemon.config import DaemonConfig, load_config, tls_context
from containerkit.daemon.server import TCPServer, UnixServer
from containerkit.errors import ContainerkitError

__all__ = ["main", "serve"]

log = logging.getLogger("containerkit.daemon")


def _gid(group: str | None) -> int:
    if group is None:
        return 0 if os.geteuid() == 0 else -1
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise ContainerkitError(f"--group {group}: no such group") from None


def _raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: every connection and container stream is a
    descriptor, and the server caps its connections below what is left."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)


def _warn_insecure(config: DaemonConfig) -> None:
    """Plain TCP has no authentication: every local user can reach it, and the API is root."""
    for listen in config.hosts:
        if listen.scheme == "tcp" and not config.tlsverify:
            message = (
                f"WARNING: plain TCP on {listen} (--insecure-tcp): any local user can connect and drive "
                "the API, which runs containers as root (root on this host); use --tlsverify instead"
            )
            log.warning("%s", message)
            print(f"containerkitd: {message}", file=sys.stderr, flush=True)


def serve(config: DaemonConfig, stop: threading.Event | None = None) -> None:
    """Serve every configured address until ``stop`` is set (or SIGTERM/SIGINT arrives)."""
    from containerkit.engine import Engine

    stop = stop or threading.Event()
    _raise_nofile()
    _warn_insecure(config)
    engine = Engine(root=config.root)
    app = DaemonApp(engine)
    headers = app.headers()
    servers: list[UnixServer | TCPServer] = []
    try:
        tls = tls_context(config)
        gid = _gid(config.group)
        for listen in config.hosts:
            if listen.scheme == "unix":
                servers.append(UnixServer(listen.path, app, headers, mode=0o660, gid=gid))
            else:
                servers.append(TCPServer((listen.host, listen.port), app, headers, tls))
        for server, listen in zip(servers, config.hosts, strict=True):
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
            log.info("containerkitd listening on %s (root %s)", listen, config.root)
        if config.pidfile is not None:
            config.pidfile.parent.mkdir(parents=True, exist_ok=True)
            config.pidfile.write_text(f"{os.getpid()}\n")
        stop.wait()
    finally:
        log.info("containerkitd stopping; containers keep running")
        for server in servers:
            server.shutdown()
            server.server_close()
        if config.pidfile is not None:
            config.pidfile.unlink(missing_ok=True)
        engine.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(argv)
    except ContainerkitError as exc:
        print(f"containerkitd: {exc}", file=sys.stderr)
        return 2
    if config.detach:
        import daemon

        with daemon.DaemonContext(umask=0o022, working_directory="/", stderr=None):
            return _run(config)
    return _run(config)


def _run(config: DaemonConfig) -> int:
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper()),
        format="%(asctime)s containerkitd %(levelname)s %(message)s",
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        serve(config, stop)
    except (ContainerkitError, OSError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
