"""What the front-ends (daemon, CLI) need from the layers under the engine, named at engine level.

``daemon/``, ``cli/``, ``testing/`` and ``wait.py`` import engine-level names only (see
``tests/test_layers.py``): the few rules they share with the runtime (a log time's syntax,
which log drivers can be read, ``security_opt`` parsing, the host's cgroup mode) are reached
through here, so a runtime or linux module can move without touching a front-end. Imports are
lazy: the CLI pays only for what a command uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from containerkit.images.reference import ImageRef
    from containerkit.runtime.seccomp_profile import SecurityOptions

__all__ = [
    "cgroup_mode",
    "check_log_driver",
    "nftables_missing",
    "parse_image_reference",
    "parse_log_time",
    "parse_security_opt",
    "split_no_new_privileges",
    "write_busybox_rootfs",
]


def parse_log_time(text: str) -> int:
    """Nanoseconds since the epoch from an RFC 3339 time, as the log records are stamped;
    :class:`~containerkit.errors.InvalidArgument` for anything else."""
    from containerkit.runtime.logs import parse_time

    return parse_time(text)


def check_log_driver(driver: str) -> None:
    """:class:`~containerkit.errors.NotSupported` for a log driver that keeps nothing to read."""
    from containerkit.runtime.logs import check_readable

    check_readable(driver)


def parse_security_opt(options: Iterable[str]) -> SecurityOptions:
    """``security_opt`` parsed; an unknown option is refused with dockerd's error text."""
    from containerkit.runtime.seccomp_profile import parse_security_opt as parse

    return parse(options)


def split_no_new_privileges(options: Iterable[str]) -> tuple[list[str], bool]:
    """``(the other options, no_new_privileges)``, the way the spec keeps them."""
    from containerkit.runtime.seccomp_profile import split_no_new_privileges as split

    return split(options)


def cgroup_mode() -> str:
    """The host's cgroup layout: ``unified``, ``hybrid`` or ``legacy``."""
    from containerkit.linux.cgroups.probe import probe

    return str(probe())


def nftables_missing() -> str | None:
    """Why bridge networks cannot work here (no libnftables and no ``nft``), or None."""
    from containerkit.network.nat import NFT_MISSING, nft_available

    return None if nft_available() else NFT_MISSING


def parse_image_reference(text: str) -> ImageRef:
    """An image reference parsed and normalised (``.familiar``: docker's short form)."""
    from containerkit.images.reference import parse_reference

    return parse_reference(text)


def write_busybox_rootfs(path: Path) -> Path:
    """A busybox rootfs tar at ``path`` from Debian's busybox-static (``Unavailable`` without it)."""
    from containerkit.images.busybox import write_busybox_rootfs as write

    return write(path)
