"""A user-namespaced container's bundle: the ``user`` namespace, its id maps, and host paths the
mapped root can reach.

The mapped root (host uid 100000, say) has no rights on root-only host directories such as the
engine root (0700/0710), so it could not walk to its rootfs or to a volume. As docker gives the
remapped root a traversable directory, the shim mounts everything the runtime must open below
``/run/containerkit-userns/<id>/`` (0711): the rootfs overlay (lowers idmapped) at ``rootfs``
and each bind source at ``m/<n>``. ``config.json`` names those paths, with the real sources in an
annotation; the shim mounts them before the runtime runs and detaches them when it is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from containerkit.errors import InvalidArgument
from containerkit.linux import _libc
from containerkit.linux.userns import UsernsMapping

__all__ = [
    "BINDS_ANNOTATION",
    "STAGING_ROOT",
    "add_user_namespace",
    "mapping_of",
    "mount_staged_binds",
    "release_staging",
    "staging_dir",
]

STAGING_ROOT = Path("/run/containerkit-userns")
BINDS_ANNOTATION = "org.containerkit.userns-binds"
"""JSON ``[[staged path, host source], ...]``: what the shim binds before the runtime starts."""


def staging_dir(container_id: str) -> Path:
    if not container_id or "/" in container_id or container_id.startswith("."):
        raise InvalidArgument(f"invalid container id {container_id!r}")
    return STAGING_ROOT / container_id


def mapping_of(config: Mapping[str, Any]) -> UsernsMapping | None:
    """The id mapping of a bundle whose namespaces include ``user``; None without one."""
    linux = config.get("linux") or {}
    if not any(n.get("type") == "user" for n in linux.get("namespaces", [])):
        return None
    mapping = UsernsMapping.from_oci(dict(linux))
    if mapping is None:
        raise InvalidArgument("config.json has a user namespace but no uidMappings/gidMappings")
    return mapping


def add_user_namespace(
    config: dict[str, Any], container_id: str, mapping: UsernsMapping, *, own_network: bool
) -> None:
    """Turn a finished ``config.json`` dict into a user-namespaced one (in place).

    The ``user`` namespace goes first (the others are made inside it); the root becomes the
    staged ``rootfs`` and every bind source a staged path, recorded in :data:`BINDS_ANNOTATION`.
    ``own_network``: the container makes its network namespace inside its user namespace. If
    not (the host's, or one the engine made), sysfs cannot be mounted there and the host's
    ``/sys`` is bound read-only instead, as runc does.
    """
    linux = config["linux"]
    linux["namespaces"] = [{"type": "user"}, *(n for n in linux["namespaces"] if n["type"] != "user")]
    linux.update(mapping.to_oci())
    base = staging_dir(container_id)
    config["root"]["path"] = str(base / "rootfs")
    staged: list[list[str]] = []
    for mount in config["mounts"]:
        options = mount.get("options") or []
        source = mount.get("source")
        if (mount.get("type") == "bind" or "bind" in options or "rbind" in options) and source:
            if not os.path.isabs(str(source)):
                raise InvalidArgument(f"bind mount source {source!r} must be absolute with a user namespace")
            target = str(base / "m" / str(len(staged)))
            staged.append([target, str(source)])
            mount["source"] = target
    config.setdefault("annotations", {})[BINDS_ANNOTATION] = json.dumps(staged)
    if not own_network:
        for mount in config["mounts"]:
            if mount.get("type") == "sysfs":
                flags = [o for o in mount.get("options", []) if o in ("nosuid", "noexec", "nodev", "ro")]
                mount.update(type="bind", source="/sys", options=["rbind", *flags])


def _make_dir(path: Path) -> None:
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o711)
    os.chmod(path, 0o711)  # whatever the umask: the mapped root must be able to walk through


def prepare_staging(container_id: str) -> Path:
    """Create ``/run/containerkit-userns/<id>/{rootfs,m}`` (root's, 0711)."""
    _make_dir(STAGING_ROOT)
    base = staging_dir(container_id)
    _make_dir(base)
    _make_dir(base / "m")
    _make_dir(base / "rootfs")
    return base


def mount_staged_binds(config: Mapping[str, Any]) -> None:
    """Bind each real source on its staged path (a file or a directory, like the source)."""
    raw = (config.get("annotations") or {}).get(BINDS_ANNOTATION)
    if not raw:
        return
    for target, source in json.loads(raw):
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError as exc:
            raise InvalidArgument(f"bind mount source {source}: {exc.strerror}") from None
        if is_dir:
            _make_dir(Path(target))
        else:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            os.close(fd)
        try:
            _libc.libc.mount(source, target, None, _libc.MS_BIND | _libc.MS_REC, None)
        except OSError as exc:
            raise InvalidArgument(f"bind mount source {source}: {exc.strerror}") from None


def _mounts_under(base: Path) -> list[str]:
    prefix = str(base) + "/"
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            point = line.split(" ", 5)[4].encode().decode("unicode_escape")
            if point == str(base) or point.startswith(prefix):
                found.append(point)
    return found


def release_staging(container_id: str) -> None:
    """Detach every mount below the container's staging dir, then remove its empty skeleton.

    Nothing is deleted while a mount is left: no recursive delete can reach a volume or a layer.
    """
    base = staging_dir(container_id)
    if not base.exists():
        return
    for point in sorted(_mounts_under(base), key=len, reverse=True):
        with contextlib.suppress(OSError):
            _libc.libc.umount2(point, _libc.MNT_DETACH)
    left = _mounts_under(base)
    if left:
        raise OSError(f"still mounted under {base}: {', '.join(left)}")
    for dirpath, dirnames, filenames in os.walk(base, topdown=False):
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            os.rmdir(os.path.join(dirpath, name))
    os.rmdir(base)
