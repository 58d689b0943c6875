"""Turning a ContainerSpec and its image into an OCI bundle in the container's state dir.

Everything a start needs is decided here, once, at create time (like ``runc create``): the
writable snapshot, ``/etc/hostname``/``hosts``/``resolv.conf``, the user, volume binds and
``config.json``. Start then only hands the bundle to a shim.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from containerkit.errors import InvalidArgument
from containerkit.linux.capabilities import known_capabilities
from containerkit.linux.users import resolve_user
from containerkit.network.dns_files import hosts_file, resolv_conf
from containerkit.runtime.bundle import ROOTFS_MOUNT_ANNOTATION, build_oci_config, write_config
from containerkit.spec import ContainerSpec, Image

if TYPE_CHECKING:
    from containerkit.engine.engine import Engine

__all__ = [
    "anonymous_volumes",
    "exec_process",
    "prepare_bundle",
    "read_rootfs_mount",
    "reset_for_restart",
]

_ROOTFS_MOUNT_FILE = "rootfs-mount.json"
_ANON_VOLUMES_FILE = "anonymous-volumes.json"
_HOST_RESOLV = Path("/etc/resolv.conf")
# What the shim writes; removed before a restart so the state reads "created" again.
_RUN_FILES = ("state.json", "exit.json", "stdin")


def _write(path: Path, text: str) -> str:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return str(path)


def _etc_files(state_dir: Path, spec: ContainerSpec, hostname: str) -> dict[str, str]:
    try:
        host_resolv = _HOST_RESOLV.read_text()
    except OSError:
        host_resolv = ""
    return {
        "/etc/hostname": _write(state_dir / "hostname", hostname + "\n"),
        "/etc/hosts": _write(state_dir / "hosts", hosts_file(hostname, None, spec.extra_hosts)),
        "/etc/resolv.conf": _write(state_dir / "resolv.conf", resolv_conf(host_resolv, list(spec.dns))),
    }


def _volume_mounts(
    engine: Engine, state_dir: Path, spec: ContainerSpec, image: Image
) -> list[dict[str, Any]]:
    """Binds for ``bind`` and ``volume`` mounts, plus an anonymous volume for each image VOLUME
    the spec does not cover (docker's behaviour)."""
    result: list[dict[str, Any]] = []
    anonymous: list[str] = []
    for mount in spec.mounts:
        if mount.type == "tmpfs":
            continue
        if mount.type == "bind":
            if not os.path.exists(mount.source):
                raise InvalidArgument(
                    f'invalid mount config for type "bind": bind source path does not exist: {mount.source}'
                )
            source = mount.source
        else:
            volume = engine.volumes.ensure(mount.source) if mount.source else engine.volumes.create()
            if not mount.source:
                anonymous.append(volume.name)
            source = volume.mountpoint
        options = ["rbind", "ro" if mount.read_only else "rw", *mount.options]
        result.append({"destination": mount.target, "type": "bind", "source": source, "options": options})
    covered = {m.target.rstrip("/") for m in spec.mounts}
    for path in image.config.volumes:
        if path.rstrip("/") in covered:
            continue
        volume = engine.volumes.create()
        anonymous.append(volume.name)
        result.append(
            {"destination": path, "type": "bind", "source": volume.mountpoint, "options": ["rbind", "rw"]}
        )
    _write(state_dir / _ANON_VOLUMES_FILE, json.dumps(anonymous))
    return result


def prepare_bundle(
    engine: Engine, container_id: str, spec: ContainerSpec, image: Image, state_dir: Path
) -> None:
    """Create the snapshot and write ``bundle/config.json`` for a new container."""
    bundle = state_dir / "bundle"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    chain_ids = engine.images.chain_ids(image.id)
    rootfs_mount = engine.snapshots.prepare(container_id, list(reversed(chain_ids)))
    rootfs_json = json.dumps(rootfs_mount.to_oci())
    _write(state_dir / _ROOTFS_MOUNT_FILE, rootfs_json)
    hostname = spec.hostname or container_id[:12]
    user = resolve_user(
        spec.user if spec.user is not None else image.config.user,
        lambda path: engine.images.read_file(image.id, path),
    )
    config = build_oci_config(
        spec,
        image.config,
        user=user,
        hostname=hostname,
        etc_files=_etc_files(state_dir, spec, hostname),
        mounts=_volume_mounts(engine, state_dir, spec, image),
        cgroups_path=f"containerkit/{container_id}",
        annotations={ROOTFS_MOUNT_ANNOTATION: rootfs_json},
    )
    write_config(bundle, config)


def read_rootfs_mount(state_dir: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((state_dir / _ROOTFS_MOUNT_FILE).read_text()))
    except FileNotFoundError:
        return None


def anonymous_volumes(state_dir: Path) -> list[str]:
    try:
        return list(json.loads((state_dir / _ANON_VOLUMES_FILE).read_text()))
    except (FileNotFoundError, ValueError):
        return []


def reset_for_restart(state_dir: Path) -> None:
    """Forget the last run's state files (the log is kept, as docker keeps it)."""
    for name in _RUN_FILES:
        path = state_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def exec_process(
    engine: Engine,
    container_id: str,
    spec: ContainerSpec,
    image_id: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | Iterable[str] | None,
    user: str | None,
    workdir: str | None,
    tty: bool,
    privileged: bool,
) -> dict[str, Any]:
    """The OCI ``process`` for an exec: the container's own, with the exec's overrides."""
    config = json.loads((engine.containers.state_dir(container_id) / "bundle" / "config.json").read_text())
    process: dict[str, Any] = dict(config["process"])
    process["args"] = list(argv)
    process["terminal"] = tty
    if env:
        merged = dict(item.split("=", 1) for item in process.get("env", []) if "=" in item)
        extra = ContainerSpec(image="x", env=env).env
        merged.update(extra)
        process["env"] = [f"{k}={v}" for k, v in merged.items()]
    if workdir:
        if not workdir.startswith("/"):
            raise InvalidArgument(f"exec workdir must be an absolute path, got {workdir!r}")
        process["cwd"] = workdir
    if user is not None:
        resolved = resolve_user(user, lambda path: engine.images.read_file(image_id, path))
        process["user"] = {
            "uid": resolved.uid,
            "gid": resolved.gid,
            "additionalGids": list(resolved.additional_gids),
        }
    if privileged and not spec.privileged:
        caps = known_capabilities()
        process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    return process
