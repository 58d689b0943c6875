"""Overlay and bind mounts for the snapshot store, and the probe that says whether overlay works.

The snapshotter decides *what* to mount; this module only turns paths into mount syscalls
(through :mod:`containerkit.linux._libc`) and tells whether a path is a mount point.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from containerkit.errors import ContainerkitError, InvalidArgument, NotFound, Unavailable
from containerkit.linux import _libc, idmap
from containerkit.linux._libc import MNT_DETACH, MS_BIND, MS_NODEV, MS_RDONLY, MS_REC, MS_REMOUNT

__all__ = [
    "bind_mount",
    "is_mountpoint",
    "mount_idmapped_overlay",
    "mount_overlay",
    "overlay_options",
    "overlay_supported",
    "syncfs",
    "unmount",
]

_UNAVAILABLE = (errno.ENODEV, errno.EPERM, errno.ENOSYS, errno.EACCES)


def _failed(what: str, err: OSError) -> ContainerkitError:
    if err.errno in _UNAVAILABLE:
        return Unavailable(f"{what}: {os.strerror(err.errno or 0)}")
    return ContainerkitError(f"{what}: {err.strerror or err}")


def _check_option_path(path: str) -> str:
    # overlay splits its option string on "," and lowerdir on ":"; such paths cannot be passed
    if "," in path or ":" in path:
        raise InvalidArgument(f"overlay path {path!r} contains ',' or ':'")
    return path


def overlay_options(
    lowerdirs: Sequence[str | Path],
    upper: str | Path | None,
    work: str | Path | None,
    options: Sequence[str] = (),
) -> str:
    """The ``lowerdir=..,upperdir=..,workdir=..`` data string (lowerdirs top-most first)."""
    if not lowerdirs:
        raise InvalidArgument("an overlay mount needs at least one lowerdir")
    if (upper is None) != (work is None):
        raise InvalidArgument("upperdir and workdir go together")
    parts = ["lowerdir=" + ":".join(_check_option_path(str(p)) for p in lowerdirs)]
    if upper is not None and work is not None:
        parts.append("upperdir=" + _check_option_path(str(upper)))
        parts.append("workdir=" + _check_option_path(str(work)))
    return ",".join([*parts, *options])


def mount_overlay(
    lowerdirs: Sequence[str | Path],
    upper: str | Path | None,
    work: str | Path | None,
    target: str | Path,
    readonly: bool = False,
    *,
    options: Sequence[str] = (),
) -> None:
    """Mount an overlay of ``lowerdirs`` (top-most first) with an optional writable upper on ``target``.

    ``options`` are extra overlay options (e.g. ``index=off``).
    """
    data = overlay_options(lowerdirs, upper, work, options)
    if len(data) >= os.sysconf("SC_PAGESIZE"):
        raise InvalidArgument(f"overlay options for {target} are {len(data)} bytes, over one page")
    try:
        _libc.libc.mount("overlay", str(target), "overlay", MS_RDONLY if readonly else 0, data)
    except OSError as err:
        raise _failed(f"overlay mount on {target}", err) from err


def mount_idmapped_overlay(options: Sequence[str], target: str | Path, userns_fd: int, staging: Path) -> None:
    """Mount an overlay given as option strings (``lowerdir=..``, ``upperdir=..``, ...) on
    ``target`` with every lower dir idmapped through ``userns_fd``.

    Each lower is bound, idmapped, under ``staging`` (a new empty directory, removed again);
    overlay keeps private clones of its lowers, so those binds are detached once it is mounted
    and only the overlay remains to unmount. The upper dir is used as it is (its owner is the
    mapped root already). The overlay is ``nodev``.
    """
    lowers: list[str] = []
    rest: list[str] = []
    for option in options:
        if option.startswith("lowerdir="):
            lowers = option.removeprefix("lowerdir=").split(":")
        else:
            rest.append(option)
    if not lowers:
        raise InvalidArgument(f"overlay options for {target} have no lowerdir")
    staging.mkdir(mode=0o700)
    mapped: list[Path] = []
    try:
        for index, lower in enumerate(lowers):
            where = staging / str(index)
            where.mkdir()
            idmap.idmapped_bind(os.path.realpath(lower), where, userns_fd)
            mapped.append(where)
        data = ",".join(["lowerdir=" + ":".join(str(p) for p in mapped), *rest])
        if len(data) >= os.sysconf("SC_PAGESIZE"):
            raise InvalidArgument(f"overlay options for {target} are {len(data)} bytes, over one page")
        try:
            # nodev: a device node an image ships is never opened, whatever the device cgroup says
            _libc.libc.mount("overlay", str(target), "overlay", MS_NODEV, data)
        except OSError as err:
            raise _failed(f"overlay mount (idmapped lowers) on {target}", err) from err
    finally:
        for where in mapped:
            try:
                _libc.libc.umount2(str(where), MNT_DETACH)
            except OSError:
                continue
        # rmdir only, never a recursive delete: a bind left mounted must not take a layer with it
        for where in sorted(staging.iterdir(), reverse=True):
            try:
                where.rmdir()
            except OSError:
                continue
        with contextlib.suppress(OSError):
            staging.rmdir()


def bind_mount(
    source: str | Path, target: str | Path, readonly: bool = False, recursive: bool = True
) -> None:
    """Bind ``source`` on ``target``; read-only needs a second remount, as the kernel ignores it on bind."""
    flags = MS_BIND | (MS_REC if recursive else 0)
    try:
        _libc.libc.mount(str(source), str(target), None, flags)
        if readonly:
            _libc.libc.mount(None, str(target), None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    except OSError as err:
        raise _failed(f"bind mount of {source} on {target}", err) from err


def unmount(target: str | Path, detach: bool = True) -> None:
    """Unmount ``target`` (lazily by default, so a busy mount never blocks cleanup)."""
    try:
        _libc.libc.umount2(str(target), MNT_DETACH if detach else 0)
    except OSError as err:
        if err.errno in (errno.EINVAL, errno.ENOENT):
            raise NotFound(f"{target} is not a mount point") from err
        raise _failed(f"unmount of {target}", err) from err


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def is_mountpoint(path: str | Path) -> bool:
    """True if ``path`` is a mount point in this mount namespace (bind mounts included)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return any(_unescape(line.split(" ", 5)[4]) == real for line in f)


def syncfs(path: str | Path) -> None:
    """Flush the whole filesystem holding ``path`` once, instead of an fsync per file."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _libc.libc.syncfs(fd)
    finally:
        os.close(fd)


def overlay_supported(probe_dir: str | Path) -> bool:
    """Whether overlay mounts with whiteouts work on the filesystem of ``probe_dir``.

    Mounts two lowers (the top one whiting out a file of the bottom one, as unpacked layers do)
    under an upper dir, in a temp dir under ``probe_dir``; any failure means "use the copy driver".
    """
    base = Path(tempfile.mkdtemp(prefix=".overlay-probe-", dir=probe_dir))
    merged = base / "merged"
    try:
        for name in ("bottom", "top", "upper", "work", "merged"):
            (base / name).mkdir()
        (base / "bottom" / "gone").write_bytes(b"")
        (base / "bottom" / "kept").write_bytes(b"")
        os.mknod(base / "top" / "gone", stat.S_IFCHR | 0o600, 0)
        mount_overlay([base / "top", base / "bottom"], base / "upper", base / "work", merged)
        try:
            (merged / "new").write_bytes(b"x")
            ok = sorted(os.listdir(merged)) == ["kept", "new"]
        finally:
            unmount(merged)
        return ok and (base / "upper" / "new").exists()
    except (OSError, ContainerkitError):
        return False
    finally:
        shutil.rmtree(base, ignore_errors=True)
