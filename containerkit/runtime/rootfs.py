"""The container's root filesystem as the shim mounts it, and its undoing.

runc and crun find ``root.path`` ready (containerd's shim mounts it too): the shim mounts the
request's ``rootfs_mount`` (or the bundle's ``org.containerkit.rootfs-mount`` annotation) there.
The built-in runtime mounts its root inside the container itself, except with a user namespace:
then the paths its mapped root must reach are staged (see :mod:`~containerkit.runtime.usermap`)
and the root mounted here, before the init leaves the host's user namespace.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from containerkit.linux import _libc
from containerkit.linux.userns import make_userns
from containerkit.runtime import usermap
from containerkit.runtime.bundle import ROOTFS_MOUNT_ANNOTATION

__all__ = ["ContainerRoot"]


class ContainerRoot:
    """What the shim mounted for one container: ``target`` (the root) and ``staged`` (userns)."""

    def __init__(self, bundle: Path, container_id: str, rootfs_mount: dict[str, Any] | None) -> None:
        self.bundle = bundle
        self.container_id = container_id
        self.rootfs_mount = rootfs_mount
        self.target: str | None = None
        self.staged = False  # /run/containerkit-userns/<id> to release at the end

    def stage_userns(self, config: dict[str, Any]) -> None:
        """The paths the mapped root must reach, mounted below its staging dir (see usermap)."""
        self.staged = True
        usermap.prepare_staging(self.container_id)
        usermap.mount_staged_binds(config)
        self.mount(config)

    def mount(self, config: dict[str, Any]) -> None:
        """Mount the root at the bundle's ``root.path`` (nothing when no mount is given)."""
        spec = self.rootfs_mount
        if spec is None:
            raw = (config.get("annotations") or {}).get(ROOTFS_MOUNT_ANNOTATION)
            spec = json.loads(raw) if raw else None
        if not spec:
            return
        from containerkit.linux.mounts import parse_mount_options

        root = (config.get("root") or {}).get("path") or "rootfs"
        target = Path(root) if os.path.isabs(root) else self.bundle / root
        target.mkdir(parents=True, exist_ok=True)
        mapping = usermap.mapping_of(config)
        if mapping is not None and spec["type"] == "overlay" and spec.get("idmapLowers"):
            # The image layers, owned by host root, read as owned by the mapped root.
            from containerkit.linux.overlay import mount_idmapped_overlay

            userns_fd = make_userns(mapping)
            try:
                staging = usermap.STAGING_ROOT / f"l-{os.urandom(4).hex()}"
                mount_idmapped_overlay(list(spec.get("options") or ()), target, userns_fd, staging)
            finally:
                os.close(userns_fd)
            self.target = str(target)
            return
        options = parse_mount_options(list(spec.get("options") or ()))
        # a user-namespaced root is nodev, whatever the device cgroup allows (see the idmapped case)
        flags = options.flags | (_libc.MS_NODEV if mapping is not None and spec["type"] == "overlay" else 0)
        _libc.libc.mount(
            spec.get("source") or spec["type"], str(target), spec["type"], flags, options.data or None
        )
        self.target = str(target)

    def unmount(self) -> None:
        """Unmount the root (lazily when still busy); nothing when it is not mounted."""
        if self.target is None:
            return
        try:
            _libc.libc.umount2(self.target, 0)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # not mounted (any more)
                return
            if exc.errno != errno.EBUSY:
                raise
            _libc.libc.umount2(self.target, _libc.MNT_DETACH)

    def release_staging(self) -> None:
        if self.staged:
            usermap.release_staging(self.container_id)
