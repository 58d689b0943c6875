"""The daemon application: version prefix, routing, and the one error mapping around every route."""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from containerkit import __version__
from containerkit.daemon.errors import status_and_body
from containerkit.daemon.events import EventBus
from containerkit.daemon.execs import ExecRegistry
from containerkit.daemon.monitor import ClientGone, Monitor
from containerkit.daemon.router import Router
from containerkit.daemon.server import Request, Response
from containerkit.errors import InvalidArgument

if TYPE_CHECKING:
    from containerkit.engine import Engine

__all__ = ["API_VERSION", "MIN_API_VERSION", "DaemonApp"]

log = logging.getLogger("containerkit.daemon")

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
_VERSION_PREFIX = re.compile(r"^/v([0-9]+)\.([0-9]+)(/.*)$")


def _parse(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


class DaemonApp:
    """What every route reaches: the engine, events, the exit monitor and exec records."""

    def __init__(self, engine: Engine, *, root_dir: str = "", started: float | None = None) -> None:
        from containerkit.daemon.routes import register_all

        self.engine = engine
        self.events = EventBus(engine.event_log)
        self.monitor = Monitor(engine, self.events)
        # the daemon's own records under the engine root: exec ids outlive a daemon restart
        self.execs = ExecRegistry(engine.root / "daemon" / "execs")
        self.router = Router()
        self.started = started or time.time()
        register_all(self.router, self)
        self.monitor.recover()

    @property
    def networking(self) -> bool:
        """Whether the engine has networks (the networking work lands separately)."""
        return getattr(self.engine, "networks", None) is not None

    def headers(self) -> dict[str, str]:
        return {
            "Api-Version": API_VERSION,
            "Docker-Experimental": "false",
            "Ostype": "linux",
            "Server": f"containerkit/{__version__} (linux)",
        }

    def __call__(self, request: Request) -> Response | None:
        try:
            self._version(request)
            handler, params = self.router.resolve(request.method, request.path)
            request.params = params
            return handler(request)
        except ClientGone:
            return None
        except BaseException as exc:
            if request.hijacked:
                log.warning("%s %s failed after the hijack: %s", request.method, request.raw_path, exc)
                return None
            status, body = status_and_body(exc)
            if status == 304:
                return Response(304, b"", None)
            return Response(status, body)

    def _version(self, request: Request) -> None:
        match = _VERSION_PREFIX.match(request.raw_path)
        if match is None:
            request.api_version = API_VERSION
            return
        version = (int(match.group(1)), int(match.group(2)))
        text = f"{version[0]}.{version[1]}"
        request.path = match.group(3)
        if version > _parse(API_VERSION):
            raise InvalidArgument(
                f"client version {text} is too new. Maximum supported API version is {API_VERSION}"
            )
        if version < _parse(MIN_API_VERSION):
            raise InvalidArgument(
                f"client version {text} is too old. Minimum supported API version is {MIN_API_VERSION}, "
                "please upgrade your client to a newer version"
            )
        request.api_version = text

    def api_tuple(self, request: Request) -> tuple[int, int]:
        return _parse(request.api_version or API_VERSION)
