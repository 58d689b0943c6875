"""systemd socket activation: the listening sockets a ``.socket`` unit hands to containerkitd.

The protocol of ``sd_listen_fds(3)``, without libsystemd: ``LISTEN_PID`` names the process the
sockets are for (so a child that inherits the environment does not take them too),
``LISTEN_FDS`` says how many there are, and they are fds 3, 4, ... The variables are unset
once read, as ``sd_listen_fds(1)`` does, so nothing the daemon starts sees them. And
``sd_notify(3)``'s ``READY=1`` for ``Type=notify`` units.
"""

from __future__ import annotations

import os
import socket
import stat

from containerkit.errors import InvalidArgument

__all__ = ["LISTEN_FDS_START", "for_us", "listen_sockets", "notify"]

LISTEN_FDS_START = 3
_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def for_us() -> bool:
    """Whether the environment passes sockets to this very process (without consuming them)."""
    pid = os.environ.get("LISTEN_PID", "")
    return pid.isdigit() and int(pid) == os.getpid() and os.environ.get("LISTEN_FDS", "").isdigit()


def listen_sockets() -> list[socket.socket]:
    """The unix stream sockets passed to this process, listening already; [] when none were.

    Raises :class:`~containerkit.errors.InvalidArgument` for an fd that is not a listening
    unix stream socket: the API must not be served on something the unit did not mean.
    """
    try:
        if not for_us():
            return []
        count = int(os.environ["LISTEN_FDS"])
    finally:
        for name in _VARIABLES:
            os.environ.pop(name, None)
    sockets: list[socket.socket] = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + count):
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            raise InvalidArgument(f"socket activation: fd {fd} (of LISTEN_FDS={count}): {exc}") from None
        if not stat.S_ISSOCK(mode):
            raise InvalidArgument(f"socket activation: fd {fd} is not a socket")
        os.set_inheritable(fd, False)  # shims and containers must not hold the API socket
        sock = socket.socket(fileno=fd)
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise InvalidArgument(
                f"socket activation: fd {fd} is {sock.family.name}/{sock.type.name}; "
                "only unix stream sockets are served (ListenStream=/path)"
            )
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.detach()
            raise InvalidArgument(f"socket activation: fd {fd} ({sock.getsockname()}) is not listening")
        sockets.append(sock)
    return sockets


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``) to the service manager, if it asked for it
    with ``NOTIFY_SOCKET``; whether it was sent. A leading ``@`` is the abstract namespace."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError:
            return False
    return True
