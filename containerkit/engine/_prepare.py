"""Turning a ContainerSpec and its image into an OCI bundle in the container's state dir.

Everything a start needs is decided here, once, at create time (like ``runc create``): the
writable snapshot, ``/etc/hostname``/``hosts``/``resolv.conf``, the user, volume binds and
``config.json``. Start then only hands the bundle to a shim.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from containerkit.engine.network_service import NetPlan
from containerkit.errors import InvalidArgument
from containerkit.linux.capabilities import known_capabilities
from containerkit.linux.userns import (
    DEFAULT_REMAP_NAME,
    UsernsMapping,
    ensure_subordinate_ranges,
    read_subordinate_ranges,
)
from containerkit.linux.users import ResolvedUser, resolve_user
from containerkit.network.dns_files import hosts_file, resolv_conf
from containerkit.runtime.bundle import (
    EXEC_KEYRING_KEY,
    EXEC_SECCOMP_KEY,
    ROOTFS_MOUNT_ANNOTATION,
    SECCOMP_PROGRAM_ANNOTATION,
    build_oci_config,
    oci_resources,
    write_config,
)
from containerkit.runtime.state import make_private_dir
from containerkit.runtime.task import cgroup_name
from containerkit.runtime.usermap import add_user_namespace
from containerkit.spec import ContainerSpec, Image, parse_env

if TYPE_CHECKING:
    from containerkit.engine.container_service import ContainerService

__all__ = [
    "anonymous_volumes",
    "exec_process",
    "prepare_bundle",
    "reset_for_restart",
    "set_netns_path",
    "userns_mapping",
]

_ANON_VOLUMES_FILE = "anonymous-volumes.json"
_HOST_RESOLV = Path("/etc/resolv.conf")
_HOST_HOSTS = Path("/etc/hosts")
# What the shim writes; removed before a restart so the state reads "created" again.
_RUN_FILES = ("state.json", "exit.json", "stdin", "control", "health.json")


def _write(path: Path, text: str) -> str:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return str(path)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _etc_files(
    service: ContainerService, state_dir: Path, spec: ContainerSpec, hostname: str, net: NetPlan
) -> dict[str, str]:
    """Per-container copies: a container on the host network gets the host's files (plus its
    ``extra_hosts``, or its ``dns``), one joining another container's network shares that
    container's files; the hosts file of a bridge container is rewritten at start."""
    if net.kind == "container" and net.target_id is not None:
        target = service.state_dir(net.target_id)
        return {f"/etc/{name}": str(target / name) for name in ("hostname", "hosts", "resolv.conf")}
    host_resolv = _read(_HOST_RESOLV)
    if net.kind == "host":
        extra = "".join(f"{ip}\t{name}\n" for name, ip in spec.extra_hosts)
        hosts = _read(_HOST_HOSTS).rstrip("\n") + "\n" + extra
        resolv = resolv_conf(host_resolv, list(spec.dns)) if spec.dns else host_resolv
    else:
        hosts = hosts_file(hostname, None, spec.extra_hosts)
        resolv = resolv_conf(host_resolv, list(spec.dns))
    return {
        "/etc/hostname": _write(state_dir / "hostname", hostname + "\n"),
        "/etc/hosts": _write(state_dir / "hosts", hosts),
        "/etc/resolv.conf": _write(state_dir / "resolv.conf", resolv),
    }


def _hostname(service: ContainerService, container_id: str, spec: ContainerSpec, net: NetPlan) -> str:
    if spec.hostname:
        return spec.hostname
    if net.kind == "host":
        return socket.gethostname()
    if net.kind == "container" and net.target_id is not None:
        target = service.state_dir(net.target_id) / "hostname"
        return _read(target).strip() or net.target_id[:12]
    return container_id[:12]


def userns_mapping(service: ContainerService, spec: ContainerSpec) -> UsernsMapping | None:
    """The id ranges a container's root maps to; None for the host's user namespace.

    ``spec.userns`` decides ("host" or "auto"); unset, the engine's ``userns_remap`` does, as
    docker's daemon-wide ``userns-remap``: ``"default"`` uses (and creates) the ``containerkit``
    entries of ``/etc/subuid`` and ``/etc/subgid``, another name must have entries there. Every
    container of an engine shares the one range, as under docker.
    """
    remap = service.userns_remap
    mode = spec.userns or ("auto" if remap else "host")
    if mode == "host":
        return None
    if spec.privileged:
        raise InvalidArgument(
            "privileged mode is incompatible with user namespaces: run the container with userns='host'"
        )
    name = remap if remap and remap != "default" else DEFAULT_REMAP_NAME
    if name == DEFAULT_REMAP_NAME:
        return ensure_subordinate_ranges(name)
    return read_subordinate_ranges(name)


_USERS: OrderedDict[tuple[str, str], ResolvedUser] = OrderedDict()
_USERS_LOCK = threading.Lock()
_USERS_KEPT = 64


def _image_user(service: ContainerService, image: Image, user: str) -> ResolvedUser:
    """``user`` resolved in ``image``'s ``/etc/passwd`` and ``/etc/group``, kept per image id and
    user: an image id is the digest of its config, which names its layers by digest, so the
    files never change (reading and parsing them took 0.3-0.4 ms of every create)."""
    key = (image.id, user)
    with _USERS_LOCK:
        found = _USERS.get(key)
        if found is not None:
            _USERS.move_to_end(key)
            return found
    resolved = resolve_user(user, lambda path: service.images.read_file(image.id, path))
    with _USERS_LOCK:
        _USERS[key] = resolved
        while len(_USERS) > _USERS_KEPT:
            _USERS.popitem(last=False)
    return resolved


def _chown_volume(path: str, mapping: UsernsMapping | None) -> None:
    """A fresh (root-owned) volume dir becomes the mapped root's, as docker does with userns-remap."""
    if mapping is None:
        return
    st = os.stat(path)
    if st.st_uid == 0 and st.st_gid == 0:
        os.chown(path, mapping.uids.start, mapping.gids.start)


def _volume_mounts(
    service: ContainerService,
    state_dir: Path,
    spec: ContainerSpec,
    image: Image,
    mapping: UsernsMapping | None = None,
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
            volume = service.volumes.ensure(mount.source) if mount.source else service.volumes.create()
            if not mount.source:
                anonymous.append(volume.name)
                _write(state_dir / _ANON_VOLUMES_FILE, json.dumps(anonymous))  # a rollback finds it
            source = volume.mountpoint
            _chown_volume(source, mapping)
        options = ["rbind", "ro" if mount.read_only else "rw", *mount.options]
        result.append({"destination": mount.target, "type": "bind", "source": source, "options": options})
    covered = {m.target.rstrip("/") for m in spec.mounts}
    for path in image.config.volumes:
        if path.rstrip("/") in covered:
            continue
        volume = service.volumes.create()
        anonymous.append(volume.name)
        _write(state_dir / _ANON_VOLUMES_FILE, json.dumps(anonymous))  # a rollback finds it
        _chown_volume(volume.mountpoint, mapping)
        result.append(
            {"destination": path, "type": "bind", "source": volume.mountpoint, "options": ["rbind", "rw"]}
        )
    return result


def prepare_bundle(
    service: ContainerService,
    container_id: str,
    spec: ContainerSpec,
    image: Image,
    state_dir: Path,
    net: NetPlan,
) -> dict[str, Any]:
    """Create the snapshot and write ``bundle/config.json`` for a new container; the config."""
    bundle = make_private_dir(state_dir) / "bundle"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    chain_ids = service.images.chain_ids(image.id)
    mapping = userns_mapping(service, spec)
    offset = None if mapping is None else (mapping.uids.start, mapping.gids.start)
    rootfs_mount = service.snapshots.prepare(container_id, list(reversed(chain_ids)), id_offset=offset)
    # Only in config.json's annotation (the shim reads it there when the request has none).
    rootfs_json = json.dumps(rootfs_mount.to_oci())
    hostname = _hostname(service, container_id, spec, net)
    user = _image_user(service, image, spec.user if spec.user is not None else image.config.user)
    config = build_oci_config(
        attrs.evolve(spec, resources=spec.resources.effective(service.default_pids_limit)),
        image.config,
        user=user,
        hostname=hostname,
        etc_files=_etc_files(service, state_dir, spec, hostname, net),
        mounts=_volume_mounts(service, state_dir, spec, image, mapping),
        cgroups_path="/" + cgroup_name(container_id),
        netns_path=str(service.networks.netns_path(container_id)) if net.kind == "bridge" else None,
        annotations={ROOTFS_MOUNT_ANNOTATION: rootfs_json},
    )
    if net.kind == "host":  # no network namespace entry: the host's own
        namespaces = config["linux"]["namespaces"]
        config["linux"]["namespaces"] = [n for n in namespaces if n["type"] != "network"]
    if mapping is not None:
        add_user_namespace(config, container_id, mapping, own_network=net.kind == "none")
    write_config(bundle, config)
    return config


def set_netns_path(state_dir: Path, path: str) -> None:
    """Point ``config.json`` at the network namespace to join (``container:<id>``, known at start)."""
    bundle = state_dir / "bundle"
    config = json.loads((bundle / "config.json").read_text())
    for entry in config["linux"]["namespaces"]:
        if entry["type"] == "network":
            entry["path"] = path
    write_config(bundle, config)


def set_resources(state_dir: Path, spec: ContainerSpec, default_pids: int | None) -> None:
    """Rewrite ``config.json``'s ``linux.resources`` after ``docker update``: runc and crun apply
    the bundle's limits at every start (the built-in runtime gets them with the start request)."""
    bundle = state_dir / "bundle"
    config = json.loads((bundle / "config.json").read_text())
    effective = attrs.evolve(spec, resources=spec.resources.effective(default_pids))
    config.setdefault("linux", {})["resources"] = oci_resources(effective)
    write_config(bundle, config)


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
    service: ContainerService,
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
    config = json.loads((service.state_dir(container_id) / "bundle" / "config.json").read_text())
    process: dict[str, Any] = dict(config["process"])
    process["args"] = list(argv)
    process["terminal"] = tty
    if env:
        merged = dict(item.split("=", 1) for item in process.get("env", []) if "=" in item)
        merged.update(parse_env(env))
        process["env"] = [f"{k}={v}" for k, v in merged.items()]
    if workdir:
        if not workdir.startswith("/"):
            raise InvalidArgument(f"exec workdir must be an absolute path, got {workdir!r}")
        process["cwd"] = workdir
    if user is not None:
        resolved = resolve_user(user, lambda path: service.images.read_file(image_id, path))
        process["user"] = {
            "uid": resolved.uid,
            "gid": resolved.gid,
            "additionalGids": list(resolved.additional_gids),
        }
    if privileged and not spec.privileged:
        caps = known_capabilities()
        process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    # the built-in runtime confines an exec as the container (runc reads both from its state)
    process[EXEC_KEYRING_KEY] = f"_ses.{container_id}"
    if config.get("linux", {}).get("seccomp"):
        process[EXEC_SECCOMP_KEY] = config["linux"]["seccomp"]
        compiled = config.get("annotations", {}).get(SECCOMP_PROGRAM_ANNOTATION)
        if compiled:
            process[SECCOMP_PROGRAM_ANNOTATION] = compiled
    return process
