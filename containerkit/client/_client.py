"""``Client``: the Engine's API against a containerkitd (or any Docker-compatible daemon)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, overload

from containerkit.client import _frames, _wire
from containerkit.client._endpoint import Endpoint, TLSConfig, endpoint_from_env, parse_host
from containerkit.client._transport import API_VERSION, Transport
from containerkit.client.containers import ContainerCollection
from containerkit.client.images import ImageCollection
from containerkit.client.networks import NetworkCollection
from containerkit.client.registries import Logins, RegistryCollection
from containerkit.client.volumes import VolumeCollection
from containerkit.spec import Event
from containerkit.times import unix_seconds

__all__ = ["Client"]

TimeArg = float | int | dt.datetime | dt.timedelta | str | None


class Client:
    """A daemon's containers, images, volumes and networks, with the Engine's methods and types.

    ``base_url`` is ``unix:///path/to.sock``, ``tcp://host:2376`` (with ``tls=(ca, cert, key)``
    or a :class:`TLSConfig`), or None for :meth:`from_env`'s search. ``timeout`` is the read
    timeout of ordinary calls; waits, stops, streams and archive transfers set their own.
    Nothing is contacted until the first call.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        tls: TLSConfig | tuple[str, str, str] | None = None,
        timeout: float | None = 60.0,
        version: str = API_VERSION,
    ) -> None:
        endpoint = endpoint_from_env() if base_url is None else parse_host(base_url, tls=tls)
        self._init(endpoint, timeout, version)

    def _init(self, endpoint: Endpoint, timeout: float | None, version: str) -> None:
        self.endpoint = endpoint
        self._transport = Transport(endpoint, timeout=timeout, version=version)
        self.containers = ContainerCollection(self._transport)
        logins = Logins()  # what this Client logged in with, sent with its pulls and pushes
        self.images = ImageCollection(self._transport, logins)
        self.registries = RegistryCollection(self._transport, logins)
        self.volumes = VolumeCollection(self._transport)
        self.networks = NetworkCollection(self._transport, self.containers)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        timeout: float | None = 60.0,
        version: str = API_VERSION,
    ) -> Client:
        """The daemon the environment points at; the first of:

        1. ``CONTAINERKIT_HOST`` (TLS from ``CONTAINERKIT_CERT_PATH`` / ``CONTAINERKIT_TLS_VERIFY``);
        2. ``DOCKER_HOST`` (TLS from ``DOCKER_CERT_PATH`` / ``DOCKER_TLS_VERIFY``, as docker's CLI);
        3. ``$XDG_RUNTIME_DIR/containerkit/containerkit.sock``, if that socket exists (a rootless daemon);
        4. ``/run/containerkit/containerkit.sock``.

        TLS files are ``ca.pem``, ``cert.pem`` and ``key.pem`` in the cert path (default ``~/.docker``).
        """
        client = cls.__new__(cls)
        client._init(endpoint_from_env(environ), timeout, version)
        return client

    @property
    def base_url(self) -> str:
        return self.endpoint.url

    # -- the daemon -------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when the daemon answers; :class:`~containerkit.errors.DaemonUnavailable` otherwise."""
        reply = self._transport.request("GET", "/_ping")
        return reply.content.strip() == b"OK"

    def version(self) -> dict[str, Any]:
        data: dict[str, Any] = self._transport.get_json("/version")
        return data

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = self._transport.get_json("/info")
        return data

    @overload
    def events(
        self,
        since: TimeArg = None,
        until: TimeArg = None,
        filters: Mapping[str, Any] | None = None,
        decode: Literal[True] = True,
    ) -> Iterator[Event]: ...

    @overload
    def events(
        self,
        since: TimeArg = None,
        until: TimeArg = None,
        filters: Mapping[str, Any] | None = None,
        *,
        decode: Literal[False],
    ) -> Iterator[dict[str, Any]]: ...

    def events(
        self,
        since: TimeArg = None,
        until: TimeArg = None,
        filters: Mapping[str, Any] | None = None,
        decode: bool = True,
    ) -> Iterator[Event] | Iterator[dict[str, Any]]:
        """The daemon's events as :class:`~containerkit.spec.Event` (``decode=False``: docker's
        messages as dicts). Without ``until`` the stream stays open until the iterator is
        closed; with it, it ends at ``until``."""
        until_ts = unix_seconds(until, field="until")
        read_timeout = None
        if until_ts is not None:
            read_timeout = max(float(until_ts) - time.time(), 0.0) + (self._transport.timeout or 60.0)
        reply = self._transport.request(
            "GET",
            "/events",
            params={
                "since": unix_seconds(since, field="since"),
                "until": until_ts,
                "filters": _wire.filters_param(filters),
            },
            stream=True,
            timeout=read_timeout,
        )
        messages = _frames.json_objects(reply.chunks())
        return (Event.from_docker(m) for m in messages) if decode else messages

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections (streams already handed out keep theirs)."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.endpoint.url!r})"
