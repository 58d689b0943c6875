"""``containerkitd``: the Engine behind the Docker Engine REST API.

Modules, each with one job: :mod:`.config` (flags and TOML), :mod:`.server` (HTTP/1.1 on unix
and TLS sockets, chunked bodies, hijack), :mod:`.router` (paths and API versions),
:mod:`.errors` (the one exception -> status mapping), :mod:`.convert` (the daemon's policy on
a create), :mod:`.shapes` (engine state for the shapes; stats), :mod:`.events`,
:mod:`.monitor` (exits, waits, auto-remove), :mod:`.execs`,
:mod:`.streams` (stream framing and hijacked I/O), ``routes/*`` (one module per resource),
:mod:`.app` (wires them) and :mod:`.main` (the command). Docker's JSON itself (create bodies,
inspect and list shapes, filters) is :mod:`containerkit.dockerapi`'s.
"""

from containerkit.daemon.app import API_VERSION, MIN_API_VERSION, DaemonApp

__all__ = ["API_VERSION", "MIN_API_VERSION", "DaemonApp"]
