"""``ContainerSpec`` + image config -> an OCI runtime ``config.json``, with docker's defaults.

The same dict drives the built-in runtime, runc and crun, so everything docker decides at create
time (args, env, caps, masked paths, the standard mounts and devices) is decided here, once.
"""

from __future__ import annotations

import base64
import json
import os
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from containerkit.errors import InvalidArgument
from containerkit.linux import apparmor
from containerkit.linux import seccomp as seccomp_filter
from containerkit.linux.capabilities import known_capabilities, normalize_capability
from containerkit.linux.users import ResolvedUser, resolve_user
from containerkit.runtime.seccomp_profile import parse_security_opt, seccomp_for
from containerkit.spec import ContainerSpec, ImageConfig

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "EXEC_KEYRING_KEY",
    "EXEC_SECCOMP_KEY",
    "INIT_ANNOTATION",
    "MASKED_PATHS",
    "READONLY_PATHS",
    "ROOTFS_MOUNT_ANNOTATION",
    "SECCOMP_PROGRAM_ANNOTATION",
    "STANDARD_DEVICES",
    "ResolvedUser",
    "build_oci_config",
    "capabilities_for",
    "device_rules",
    "oci_resources",
    "resolve_user",
    "write_config",
]

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DOCKER_NOFILE = 1048576
ROOTFS_MOUNT_ANNOTATION = "org.containerkit.rootfs-mount"
"""JSON ``{"type", "source", "options"}``: the built-in runtime mounts this as the root, privately."""
INIT_ANNOTATION = "org.containerkit.init"
"""``"true"``: the built-in runtime keeps a reaping, signal-forwarding PID 1 (``docker run --init``)."""
SECCOMP_PROGRAM_ANNOTATION = "org.containerkit.seccomp-bpf"
"""``linux.seccomp`` as libseccomp compiled it at create (base64): the built-in runtime loads it as
is, with no file to trust at start (a user namespace sees the host's files as nobody's)."""
EXEC_SECCOMP_KEY = "org.containerkit.seccomp"
"""In an exec's ``process``: the container's ``linux.seccomp`` (the built-in runtime applies it)."""
EXEC_KEYRING_KEY = "org.containerkit.session-keyring"
"""In an exec's ``process``: the session keyring to join, the container's own (runc's name)."""

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def _device(path: str, major: int, minor: int) -> dict[str, Any]:
    return {"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0}


STANDARD_DEVICES: tuple[dict[str, Any], ...] = (
    _device("/dev/null", 1, 3),
    _device("/dev/zero", 1, 5),
    _device("/dev/full", 1, 7),
    _device("/dev/random", 1, 8),
    _device("/dev/urandom", 1, 9),
    _device("/dev/tty", 5, 0),
)


def _cgroup_rule(
    allow: bool, kind: str = "a", major: int | None = None, minor: int | None = None
) -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": allow, "type": kind, "access": "rwm"}
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    return rule


# docker's device cgroup: deny all, then the standard nodes, consoles, ptys and tun.
_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    _cgroup_rule(False),
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *(_cgroup_rule(True, "c", d["major"], d["minor"]) for d in STANDARD_DEVICES),
    _cgroup_rule(True, "c", 5, 1),
    _cgroup_rule(True, "c", 5, 2),
    _cgroup_rule(True, "c", 136),
    _cgroup_rule(True, "c", 10, 200),
)


def device_rules(privileged: bool) -> list[dict[str, Any]]:
    """``linux.resources.devices``: docker's list, or every device for a privileged container."""
    return [_cgroup_rule(True)] if privileged else [dict(r) for r in _DEVICE_RULES]


def _mount(destination: str, fstype: str, source: str, options: Sequence[str]) -> dict[str, Any]:
    return {"destination": destination, "type": fstype, "source": source, "options": list(options)}


def _default_mounts(privileged: bool) -> list[dict[str, Any]]:
    sys_ro = [] if privileged else ["ro"]
    return [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        _mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", *sys_ro]),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", [*sys_ro, "nosuid", "noexec", "nodev"]),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]),
    ]


def _cap_or_all(name: str) -> str:
    return "ALL" if name.strip().upper() in ("ALL", "CAP_ALL") else normalize_capability(name)


def capabilities_for(spec: ContainerSpec) -> list[str]:
    """docker's ``TweakCapabilities``: defaults, ``ALL`` in add or drop, then drops, then adds."""
    adds = [
        "ALL" if c.strip().upper() in ("ALL", "CAP_ALL") else normalize_capability(c) for c in spec.cap_add
    ]
    drops = [
        "ALL" if c.strip().upper() in ("ALL", "CAP_ALL") else normalize_capability(c) for c in spec.cap_drop
    ]
    if spec.privileged:
        return known_capabilities()
    basics = known_capabilities() if "ALL" in adds else list(DEFAULT_CAPABILITIES)
    caps = [] if "ALL" in drops else [c for c in basics if c not in drops]
    for cap in adds:
        if cap != "ALL" and cap not in caps:
            caps.append(cap)
    return caps


def _args(spec: ContainerSpec, image: ImageConfig) -> list[str]:
    if spec.entrypoint is not None:
        entrypoint, cmd = list(spec.entrypoint), list(spec.command or ())
    else:
        entrypoint = list(image.entrypoint or ())
        cmd = list(spec.command if spec.command is not None else image.cmd or ())
    args = entrypoint + cmd
    if not args:
        raise InvalidArgument("no command specified")
    return args


def _env(spec: ContainerSpec, image: ImageConfig, hostname: str, home: str) -> list[str]:
    """docker's ``CreateDaemonEnvironment``: PATH, HOSTNAME, TERM, then image and spec env win."""
    env: dict[str, str] = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    if spec.tty:
        env["TERM"] = "xterm"
    for item in image.env:
        key, _, value = item.partition("=")
        if key:
            env[key] = value
    env.update(spec.env)
    env.setdefault("HOME", home)
    return [f"{k}={v}" for k, v in env.items()]


def _resources(spec: ContainerSpec) -> dict[str, Any]:
    res = spec.resources
    out: dict[str, Any] = {"devices": device_rules(spec.privileged)}
    if res.memory is not None:
        swap = res.memory_swap if res.memory_swap is not None else 2 * res.memory
        out["memory"] = {"limit": res.memory, "swap": max(swap, res.memory)}
    cpu: dict[str, Any] = {}
    if res.cpus is not None:
        cpu.update(quota=round(res.cpus * 100_000), period=100_000)
    if res.cpu_shares is not None:
        cpu["shares"] = res.cpu_shares
    if res.cpuset_cpus is not None:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems is not None:
        cpu["mems"] = res.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    if res.pids is not None:
        out["pids"] = {"limit": res.pids}
    return out


def oci_resources(spec: ContainerSpec) -> dict[str, Any]:
    """``linux.resources`` of a bundle for ``spec`` (devices, memory, cpu, pids)."""
    return _resources(spec)


def _depth(mount: Mapping[str, Any]) -> int:
    return len([p for p in str(mount["destination"]).split("/") if p])


def _user_mounts(
    spec: ContainerSpec, etc_files: Mapping[str, str], mounts: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    result = [_mount(dest, "bind", src, ["rbind", "rprivate"]) for dest, src in etc_files.items()]
    result += [dict(m) for m in mounts]
    for m in spec.mounts:
        if m.type == "tmpfs":
            result.append(
                _mount(
                    m.target,
                    "tmpfs",
                    "tmpfs",
                    ["nosuid", "nodev", "noexec", *m.options, *(["ro"] * m.read_only)],
                )
            )
    # Parents before children, as docker sorts them; stable for equal depth.
    return sorted(result, key=_depth)


def _nofile_rlimit() -> dict[str, Any]:
    """docker's 1048576 open files, capped at our own hard limit: raising it needs
    CAP_SYS_RESOURCE, which some hosts withhold (runc then fails the whole start)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = _DOCKER_NOFILE if hard == resource.RLIM_INFINITY else min(_DOCKER_NOFILE, hard)
    return {"type": "RLIMIT_NOFILE", "hard": limit, "soft": limit}


def _apparmor_profile(spec: ContainerSpec, requested: str | None) -> str | None:
    """docker's choice: the default profile (loaded now if the kernel lacks it) where AppArmor is
    on, none for ``privileged`` or ``apparmor=unconfined``, else the profile named. A named
    profile where AppArmor is off is an error, not silently no confinement."""
    if requested == "unconfined" or (requested is None and spec.privileged):
        return None
    if requested is not None and not requested.strip():
        raise InvalidArgument("security_opt apparmor=: the profile name is empty")
    reason = apparmor.unavailable_reason()
    if reason is not None:
        if requested is None:
            return None
        raise InvalidArgument(f"security_opt apparmor={requested}: {reason}")
    if requested is None:
        apparmor.ensure_loaded(apparmor.DEFAULT_PROFILE)
        return apparmor.DEFAULT_PROFILE
    return requested


def build_oci_config(
    spec: ContainerSpec,
    image: ImageConfig,
    *,
    user: tuple[int, int, Sequence[int]] | ResolvedUser,
    hostname: str,
    etc_files: Mapping[str, str],
    mounts: Sequence[Mapping[str, Any]],
    cgroups_path: str | None,
    netns_path: str | None = None,
    rootfs: str = "rootfs",
    annotations: Mapping[str, str] | None = None,
    home: str | None = None,
) -> dict[str, Any]:
    """The ``config.json`` dict for ``spec`` running ``image``, as docker would create it.

    ``mounts`` are OCI mount dicts the engine already resolved (volumes as binds); ``etc_files``
    maps ``/etc/hosts``-like container paths to host files. ``home`` defaults to the resolved
    user's home, else ``/``.
    """
    if isinstance(user, ResolvedUser):
        uid, gid, gids = user.uid, user.gid, list(user.additional_gids)
        home = home or user.home
    else:
        uid, gid, gids = user[0], user[1], list(user[2])
    caps = capabilities_for(spec)
    security = parse_security_opt(spec.security_opt)
    no_new_privileges = (
        spec.no_new_privileges if security.no_new_privileges is None else security.no_new_privileges
    )
    user_mounts = _user_mounts(spec, etc_files, mounts)
    taken = {m["destination"] for m in user_mounts}
    all_mounts = [m for m in _default_mounts(spec.privileged) if m["destination"] not in taken] + user_mounts

    network: dict[str, Any] = {"type": "network"}
    if netns_path:
        network["path"] = netns_path
    linux: dict[str, Any] = {
        "namespaces": [
            {"type": "pid"},
            {"type": "mount"},
            {"type": "uts"},
            {"type": "ipc"},
            network,
            {"type": "cgroup"},
        ],
        "resources": _resources(spec),
        "devices": [dict(d) for d in STANDARD_DEVICES],
        "maskedPaths": [] if spec.privileged else list(MASKED_PATHS),
        "readonlyPaths": [] if spec.privileged else list(READONLY_PATHS),
    }
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    seccomp = seccomp_for(security, caps, privileged=spec.privileged)
    program = None
    if seccomp is not None:
        # compiled now (or taken from the cache): a profile libseccomp refuses fails the
        # create, and the start does not spend tens of milliseconds on it
        program = seccomp_filter.program(seccomp)
        linux["seccomp"] = seccomp

    aa_profile = _apparmor_profile(spec, security.apparmor)
    notes = dict(annotations or {})
    if program is not None:
        notes[SECCOMP_PROGRAM_ANNOTATION] = base64.b64encode(program).decode()
    if spec.init:
        notes.setdefault(INIT_ANNOTATION, "true")
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": spec.tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": gids},
            "args": _args(spec, image),
            "env": _env(spec, image, hostname, home or "/"),
            "cwd": spec.workdir or image.working_dir or "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [_nofile_rlimit()],
            "noNewPrivileges": no_new_privileges,
            **({"apparmorProfile": aa_profile} if aa_profile else {}),
        },
        "root": {"path": rootfs, "readonly": spec.read_only},
        "hostname": hostname,
        "mounts": all_mounts,
        "linux": linux,
        "annotations": notes,
    }


def write_config(bundle: Path, config: Mapping[str, Any]) -> Path:
    """Write ``bundle/config.json`` atomically (temp file + rename), without an ``fsync``.

    It is derived data, made again from the recorded spec by a new create, and a sync cost 1-5
    ms of every create here (containerd writes its bundle's config.json without one either). A
    process crash never tears it (the rename is atomic); what a power cut leaves of it, nothing
    or an empty file, a start refuses with an error that names the file and says to create the
    container again (see the shim's ``_load_config``)."""
    path = bundle / "config.json"
    tmp = bundle / ".config.json.tmp"
    # 0600: it holds the container's environment, and so any secret passed with -e.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)  # a temp file left by a crash may have had another mode
    with open(fd, "w") as f:
        # one line: json's C encoder (indent takes the pure-Python one, milliseconds for a
        # config with a seccomp profile)
        f.write(json.dumps(config))
    os.replace(tmp, path)
    return path
