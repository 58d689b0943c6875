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
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from containerkit.daemon.activation import listen_sockets, notify
from containerkit.daemon.app import DaemonApp
from containerkit.daemon.config import DaemonConfig, load_config, tls_context
from containerkit.daemon.server import TCPServer, UnixServer, _Server
from containerkit.daemon.service import Detached, PidFile, check_socket_free, detach, setup_logging
from containerkit.errors import ContainerkitError, InvalidArgument

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


def _warn_without_nftables() -> None:
    """The daemon serves without nftables (none, host and container: networks work); say once
    at start why bridge networks will fail."""
    from containerkit.engine.frontend import nftables_missing

    missing = nftables_missing()
    if missing is not None:
        log.warning("%s", missing)


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


class _ActivatedServer(_Server):
    """The API on a unix socket systemd made and listens on: its path, mode and owner are the
    socket unit's, so nothing here binds, chmods or unlinks it."""

    def __init__(self, sock: socket.socket, app: DaemonApp, headers: dict[str, str]) -> None:
        self.server_address = sock.getsockname()
        super().__init__(sock, app, headers, None, None)


def serve(
    config: DaemonConfig,
    stop: threading.Event | None = None,
    *,
    activated: Sequence[socket.socket] = (),
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve every configured address until ``stop`` is set (or SIGTERM/SIGINT arrives).

    ``activated``: the sockets from systemd, served for ``fd://``. ``ready`` is called once
    every address listens.
    """
    from containerkit.engine import Engine

    stop = stop or threading.Event()
    _raise_nofile()
    _warn_insecure(config)
    from containerkit.daemon.registry import registry_options

    engine = Engine(
        root=config.root,
        default_pids_limit=config.default_pids_limit,
        userns_remap=config.userns_remap,
        registry_options=registry_options(config),
        keep_layer_blobs=config.keep_layer_blobs,
    )
    _warn_without_nftables()
    app = DaemonApp(engine)
    headers = app.headers()
    servers: list[tuple[_Server, str]] = []
    try:
        tls = tls_context(config)
        gid = _gid(config.group)
        for listen in config.hosts:
            if listen.scheme == "fd":
                servers += [(_ActivatedServer(s, app, headers), f"fd://{s.getsockname()}") for s in activated]
            elif listen.scheme == "unix":
                check_socket_free(listen.path)
                servers.append((UnixServer(listen.path, app, headers, mode=0o660, gid=gid), str(listen)))
            else:
                servers.append((TCPServer((listen.host, listen.port), app, headers, tls), str(listen)))
        for server, where in servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
            log.info("containerkitd listening on %s (root %s)", where, config.root)
        if ready is not None:
            ready()
        stop.wait()
    finally:
        log.info("containerkitd stopping; containers keep running")
        for server, _where in servers:
            server.shutdown()
            server.server_close()
        engine.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(argv)
    except ContainerkitError as exc:
        print(f"containerkitd: {exc}", file=sys.stderr)
        return 2
    # Everything that can refuse the start is checked here, on the caller's terminal, before
    # going to the background: the sockets systemd passed (LISTEN_PID names this pid), a daemon
    # already on the pidfile or on a socket.
    pidfile = PidFile(config.effective_pidfile) if config.effective_pidfile is not None else None
    try:
        activated = listen_sockets() if any(h.scheme == "fd" for h in config.hosts) else []
        if any(h.scheme == "fd" for h in config.hosts) and not activated:
            raise InvalidArgument(
                "--host fd:// but no sockets were passed (LISTEN_FDS/LISTEN_PID): start containerkitd "
                "through its socket unit (contrib/systemd/containerkitd.socket)"
            )
        for listen in config.hosts:
            if listen.scheme == "unix":
                check_socket_free(listen.path)
        if pidfile is not None:
            pidfile.acquire()
    except ContainerkitError as exc:
        print(f"containerkitd: {exc}", file=sys.stderr)
        return 1
    keep = [s.fileno() for s in activated] + ([pidfile.fd] if pidfile is not None else [])
    if config.detach:
        with detach(keep, config.effective_log_file) as report:
            return _run(config, pidfile, activated, report)
    return _run(config, pidfile, activated, None)


def _run(
    config: DaemonConfig,
    pidfile: PidFile | None,
    activated: list[socket.socket],
    report: Detached | None,
) -> int:
    try:
        setup_logging(config.log_level, config.effective_log_file)
    except ContainerkitError as exc:
        if report is not None:
            report.failed(str(exc))
        print(f"containerkitd: {exc}", file=sys.stderr)
        if pidfile is not None:
            pidfile.release()
        return 1
    if pidfile is not None:
        if pidfile.stale_pid is not None:
            log.info("pidfile %s named pid %d, which is gone: taken over", pidfile.path, pidfile.stale_pid)
        pidfile.write(os.getpid())
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def ready() -> None:
        notify(f"READY=1\nMAINPID={os.getpid()}")  # systemd's Type=notify
        if report is not None:
            report.ready()

    try:
        serve(config, stop, activated=activated, ready=ready)
    except (ContainerkitError, OSError) as exc:
        log.error("%s", exc)
        if report is not None:
            report.failed(str(exc))
        return 1
    finally:
        if pidfile is not None:
            pidfile.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
