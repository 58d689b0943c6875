"""``containerkitd``: the Engine behind the Docker Engine REST API.

Modules, each with one job: :mod:`.config` (flags and TOML), :mod:`.server` (HTTP/1.1 on unix
and TLS sockets, chunked bodies, hijack), :mod:`.router` (paths and API versions),
:mod:`.errors` (the one exception -> status mapping), :mod:`.body` (typed access to request
JSON), :mod:`.convert` (Docker create bodies -> ``ContainerSpec``), :mod:`.shapes` (Docker's JSON
shapes), :mod:`.events`, :mod:`.monitor` (exits, waits, auto-remove), :mod:`.execs`,
:mod:`.streams` (stream framing and hijacked I/O), ``routes/*`` (one module per resource),
:mod:`.app` (wires them) and :mod:`.main` (the command).
"""

from containerkit.daemon.app import API_VERSION, MIN_API_VERSION, DaemonApp

__all__ = ["API_VERSION", "MIN_API_VERSION", "DaemonApp"]
