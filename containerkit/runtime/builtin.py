"""The built-in OCI runtime, in-container side: a bundle's ``config.json`` made real.

The caller (the shim) has already done ``unshare(CLONE_NEWPID)`` and forked; we run as PID 1 of
the new pid namespace, single-threaded, with stdio in place. Setup follows runc's
``rootfs_linux.go``/``standard_init_linux.go``. Every failure is reported once on ``error_fd``
(a close-on-exec pipe, see :mod:`containerkit.runtime._sync`), so an ``exec`` that succeeds
simply closes it and the caller reads EOF.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import resource
import signal
import socket
import stat
import termios
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from containerkit.errors import (
    CommandNotFound,
    InvalidArgument,
    RuntimeFailure,
    Unavailable,
)
from containerkit.linux import _libc, apparmor, keyring, mounts, namespaces, proctitle, seccomp
from containerkit.linux import capabilities as caps
from containerkit.runtime import _sync, trace
from containerkit.runtime._sync import PermissionDenied
from containerkit.runtime.bundle import (
    EXEC_KEYRING_KEY,
    EXEC_SECCOMP_KEY,
    INIT_ANNOTATION,
    ROOTFS_MOUNT_ANNOTATION,
    SECCOMP_PROGRAM_ANNOTATION,
    STANDARD_DEVICES,
)

__all__ = [
    "FORWARDED_SIGNALS",
    "PermissionDenied",
    "exec_in_container",
    "prepare_network",
    "run_container_init",
]

FORWARDED_SIGNALS: frozenset[int] = frozenset(
    {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT}
)
# The user namespace last: host root may join the others (its descendants' included), and
# after it we are the container's root, with no rights left over namespaces the host owns.
_EXEC_NAMESPACES = ("ipc", "uts", "network", "pid", "mount", "cgroup", "user")
_DEV_LINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
)


def _fail(error_fd: int, exc: BaseException) -> NoReturn:
    """Write the one error report and leave without running any of the parent's cleanup."""
    try:
        _sync.report(error_fd, exc)
    finally:
        os._exit(_sync.exit_code_for(exc))


# -- namespaces and the root filesystem ------------------------------------------------------------


def prepare_network() -> int:
    """Ahead of a container: a fresh network namespace with ``lo`` up, for an init forked before
    its request (a new one costs a millisecond or more). Returns an fd of the namespace we were
    in, for a container that wants none or another one (see ``prepared_network``)."""
    previous = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        namespaces.unshare(["network"])
        namespaces.bring_up_loopback()
    except BaseException:
        os.close(previous)
        raise
    return previous


def _setup_namespaces(
    linux: Mapping[str, Any], prepared_network: int | None = None
) -> tuple[set[str], dict[str, Any] | None]:
    """Join namespaces given by path, then unshare the rest (pid was done by the caller).

    The cgroup namespace is left out and returned (its entry, or None): it must be made only
    once this process is in its cgroup (see :func:`_enter_cgroup_namespace`).
    ``prepared_network``: we already are in a fresh network namespace (:func:`prepare_network`);
    it is used for a fresh one, left for a path, and the fd's namespace is rejoined without any.
    """
    fresh: list[str] = []
    private: set[str] = set()
    with_userns = any(n.get("type") == "user" for n in linux.get("namespaces", []))
    cgroup_entry: dict[str, Any] | None = None
    for entry in linux.get("namespaces", []):
        kind = str(entry.get("type", ""))
        if kind == "pid":
            private.add(kind)
            continue
        if kind == "user":
            if not _in_user_namespace():
                raise Unavailable("the user namespace must be made by the shim before the init runs")
            private.add(kind)  # made (and mapped) by the shim's helper, before every other one
            continue
        if kind not in namespaces.NAMESPACE_FLAGS:
            raise InvalidArgument(f"unknown namespace type {kind!r} in config.json")
        private.add(kind)
        if kind == "cgroup":
            cgroup_entry = dict(entry)
        elif entry.get("path"):
            # with a user namespace the shim's helper joined it already, as host root
            if not with_userns:
                namespaces.setns_path(str(entry["path"]), kind)
        elif kind != "network" or prepared_network is None:
            fresh.append(kind)
    if prepared_network is not None:
        try:
            if "network" not in private:  # the host's network: back to where we came from
                _libc.libc.setns(prepared_network, namespaces.NAMESPACE_FLAGS["network"])
        finally:
            os.close(prepared_network)
    namespaces.unshare(fresh)
    if "network" in fresh:
        namespaces.bring_up_loopback()
    return private, cgroup_entry


def _enter_cgroup_namespace(cgroup_ready: int | None, entry: Mapping[str, Any] | None) -> None:
    """Wait until the caller has put us in our cgroup, then make (or join) the cgroup namespace.

    The caller writes our pid to ``cgroup.procs`` while we set up namespaces and the root: a
    cgroup v1 migration waits for an RCU grace period (milliseconds), which this overlaps.
    The namespace must come after the move, or its root would be the caller's cgroup.
    """
    if cgroup_ready is not None:
        trace.mark("init.cgroup_wait")
        try:
            ready = os.read(cgroup_ready, 1)
        finally:
            os.close(cgroup_ready)
        if not ready:
            raise RuntimeFailure("the shim could not place the container in its cgroup")
        trace.mark("init.in_cgroup")
    if entry is None:
        return
    if entry.get("path"):
        namespaces.setns_path(str(entry["path"]), "cgroup")
    else:
        namespaces.unshare(["cgroup"])


def _root_path(bundle: Path, config: Mapping[str, Any]) -> str:
    path = Path(str(config.get("root", {}).get("path", "rootfs")))
    root = path if path.is_absolute() else bundle / path
    if not root.is_dir():
        raise InvalidArgument(f"root path {root} is not a directory")
    return mounts.real_dir(str(root))


def _in_user_namespace() -> bool:
    """Whether we run in a user namespace other than the initial one (its map is not identity)."""
    with open("/proc/self/uid_map") as f:
        return f.read().split() != ["0", "0", "4294967295"]


def _has_user_namespace(config: Mapping[str, Any]) -> bool:
    return any(n.get("type") == "user" for n in config.get("linux", {}).get("namespaces", []))


def _mount_root(root: str, config: Mapping[str, Any]) -> None:
    """Make host mounts unreachable from here, then mount the root (overlay from the annotation)."""
    linux = config.get("linux", {})
    propagation = mounts.parse_mount_options([str(linux.get("rootfsPropagation") or "rslave")]).propagation
    mounts.set_propagation("/", propagation[0] if propagation else _libc.MS_SLAVE | _libc.MS_REC)
    spec = config.get("annotations", {}).get(ROOTFS_MOUNT_ANNOTATION)
    if spec and not _has_user_namespace(config):  # with one, the shim mounted it (idmapped)
        try:
            desc = json.loads(spec)
            parsed = mounts.parse_mount_options([str(o) for o in desc.get("options", [])])
            _libc.libc.mount(str(desc["source"]), root, str(desc["type"]), parsed.flags, parsed.data or None)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArgument(f"annotation {ROOTFS_MOUNT_ANNOTATION}: {exc}") from None
    else:
        _libc.libc.mount(root, root, None, _libc.MS_BIND | _libc.MS_REC, None)


def _related(a: str, b: str) -> bool:
    """Whether one of two container paths is the other or lies below it."""
    a, b = os.path.normpath("/" + a), os.path.normpath("/" + b)
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _mount_all(
    bundle: Path,
    root: str,
    entries: Sequence[Mapping[str, Any]],
    before_cgroup: Callable[[], None] = lambda: None,
) -> None:
    """Mount every entry; ``before_cgroup`` runs once, before the first cgroup mount (or at the end).

    A cgroup mount that no later entry sits on, under or above is done last, so the other
    mounts overlap the wait in ``before_cgroup`` (the caller moving us into our cgroup); the
    resulting tree is the same.
    """
    pending: Callable[[], None] | None = before_cgroup
    deferred: list[Mapping[str, Any]] = []
    for index, entry in enumerate(entries):
        if str(entry.get("type") or "") == "cgroup":
            destination = str(entry["destination"])
            if not any(_related(destination, str(e["destination"])) for e in entries[index + 1 :]):
                deferred.append(entry)
                continue
            if pending is not None:
                pending()
                pending = None
        _mount_entry(bundle, root, entry)
    if pending is not None:
        pending()
    for entry in deferred:
        _mount_entry(bundle, root, entry)


def _mount_entry(bundle: Path, root: str, entry: Mapping[str, Any]) -> None:
    destination = str(entry["destination"])
    source = entry.get("source")
    fstype = str(entry.get("type") or "")
    options = [str(o) for o in entry.get("options", [])]
    is_bind = fstype == "bind" or mounts.parse_mount_options(options).is_bind
    if is_bind and source and not os.path.isabs(str(source)):
        source = str(bundle / str(source))
    try:
        try:
            mounts.mount_in_root(root, destination, fstype, None if source is None else str(source), options)
        except PermissionError:
            if fstype != "sysfs" or not _in_user_namespace():
                raise
            # sysfs belongs to the network namespace's owner: in a user namespace without a
            # network namespace of its own, bind the host's /sys instead (as runc does).
            source, fstype = "/sys", "bind"
            mounts.mount_in_root(root, destination, "bind", source, ["rbind", *options])
    except OSError as exc:
        raise RuntimeFailure(f"mount {source} on {destination} (type {fstype or 'bind'}): {exc}") from exc


def _setup_dev(root: str, config: Mapping[str, Any], terminal: bool) -> None:
    """Device nodes, the ``/dev`` symlinks and ``ptmx``, unless ``/dev`` is a bind of the host's."""
    dev_mount = next((m for m in config.get("mounts", []) if m.get("destination") == "/dev"), None)
    if dev_mount is not None and (
        dev_mount.get("type") == "bind" or mounts.parse_mount_options(dev_mount.get("options", [])).is_bind
    ):
        return
    wanted = {str(d["path"]): d for d in STANDARD_DEVICES}
    wanted.update({str(d["path"]): d for d in config.get("linux", {}).get("devices", [])})
    for device in wanted.values():
        try:
            mounts.create_device(root, device)
        except OSError as exc:
            raise RuntimeFailure(f"create device {device['path']}: {exc}") from exc
    dev = mounts.ensure_mount_point(root, "/dev")
    for target, name in _DEV_LINKS:
        with contextlib.suppress(FileExistsError):
            os.symlink(target, os.path.join(dev, name))
    ptmx = os.path.join(dev, "ptmx")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)
    if terminal:
        with contextlib.suppress(OSError):
            mounts.bind_device(root, os.ttyname(0), "/dev/console")


def _after_pivot(config: Mapping[str, Any], private: set[str]) -> None:
    linux = config.get("linux", {})
    for key, value in linux.get("sysctl", {}).items():
        try:
            with open("/proc/sys/" + str(key).replace(".", "/"), "w") as f:
                f.write(str(value))
        except OSError as exc:
            raise RuntimeFailure(f"sysctl {key}={value}: {exc.strerror}") from exc
    try:
        for path in linux.get("readonlyPaths", []):
            mounts.readonly_path(str(path))
        for path in linux.get("maskedPaths", []):
            mounts.mask_path(str(path))
        if config.get("root", {}).get("readonly"):
            mounts.remount_readonly("/")
    except OSError as exc:
        raise RuntimeFailure(str(exc)) from exc
    if config.get("hostname"):
        if "uts" not in private:
            raise InvalidArgument("unable to set hostname without a private UTS namespace")
        socket.sethostname(str(config["hostname"]))


def _setup_rootfs(
    bundle: Path, config: Mapping[str, Any], cgroup_ready: int | None, prepared_network: int | None
) -> None:
    private, cgroup_entry = _setup_namespaces(config.get("linux", {}), prepared_network)
    trace.mark("init.namespaces")
    root = _root_path(bundle, config)
    process = config.get("process", {})
    _mount_root(root, config)
    trace.mark("init.root_mount")
    _mount_all(
        bundle,
        root,
        config.get("mounts", []),
        before_cgroup=lambda: _enter_cgroup_namespace(cgroup_ready, cgroup_entry),
    )
    _setup_dev(root, config, bool(process.get("terminal")))
    trace.mark("init.mounts")
    cwd = str(process.get("cwd") or "/")
    with contextlib.suppress(OSError):
        mounts.ensure_mount_point(root, cwd)  # like runc and docker: a missing workdir is created
    try:
        mounts.pivot_root(root)
    except OSError as exc:
        raise RuntimeFailure(f"pivot_root {root}: {exc}") from exc
    _after_pivot(config, private)
    trace.mark("init.pivot_root")


# -- the process -------------------------------------------------------------------------------------


def _setup_session(process: Mapping[str, Any]) -> None:
    """New session; with a terminal, stdin (the pty slave) becomes the controlling tty."""
    with contextlib.suppress(PermissionError):
        os.setsid()
    if process.get("terminal"):
        try:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        except OSError as exc:
            raise RuntimeFailure(f"make stdin the controlling terminal: {exc}") from exc


def _apply_limits(process: Mapping[str, Any]) -> None:
    for rlimit in process.get("rlimits", []):
        name = str(rlimit["type"])
        number = getattr(resource, name, None)
        if not isinstance(number, int):
            raise InvalidArgument(f"unknown rlimit {name!r}")
        soft, hard = int(rlimit["soft"]), int(rlimit["hard"])
        try:
            resource.setrlimit(number, (soft, hard))
        except (OSError, ValueError) as exc:
            # Without CAP_SYS_RESOURCE (a host that withholds it) a hard limit cannot be raised:
            # cap the request at what we have rather than refuse to start.
            current = resource.getrlimit(number)[1]
            if current == resource.RLIM_INFINITY or hard <= current:
                raise RuntimeFailure(f"setrlimit {name} {soft}/{hard}: {exc}") from exc
            resource.setrlimit(number, (min(soft, current), current))
    if "oomScoreAdj" in process:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(int(process["oomScoreAdj"])))


_CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def _capability_masks(process: Mapping[str, Any]) -> dict[str, int] | None:
    """Each set of ``process.capabilities`` as the mask of what we hold (a privileged container
    gets all the caps we have); None without a ``capabilities`` entry.

    Computed once, early (while the caller moves us into our cgroup): nothing before
    :func:`_become_user` changes what we hold.
    """
    wanted = process.get("capabilities")
    if wanted is None:
        return None
    held = caps.current_capabilities()["CapPrm"]
    return {name: caps.capability_mask(wanted.get(name) or []) & held for name in _CAPABILITY_SETS}


def _become_user(process: Mapping[str, Any], masks: dict[str, int] | None = None) -> None:
    """Bounding set while still root, ids with KEEPCAPS, then the final sets, cwd and no_new_privs."""
    lib = _libc.libc
    if masks is None:
        masks = _capability_masks(process)
    if masks is not None:
        caps.drop_bounding(masks["bounding"])
    user = process.get("user", {})
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    os.setgroups([int(g) for g in user.get("additionalGids", [])])
    os.setresgid(gid, gid, gid)
    lib.prctl(_libc.PR_SET_KEEPCAPS, 1)
    os.setresuid(uid, uid, uid)
    lib.prctl(_libc.PR_SET_KEEPCAPS, 0)
    if "umask" in user:
        os.umask(int(user["umask"]))
    cwd = str(process.get("cwd") or "/")
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise RuntimeFailure(f"chdir to cwd {cwd!r} set in config.json failed: {exc.strerror}") from None
    if masks is not None:
        caps.apply_capabilities(
            effective=masks["effective"],
            permitted=masks["permitted"],
            inheritable=masks["inheritable"],
            ambient=masks["ambient"],
        )
    if process.get("noNewPrivileges"):
        lib.prctl(_libc.PR_SET_NO_NEW_PRIVS, 1)


def _seccomp_program(
    filter_: Mapping[str, Any] | None, compiled: str | None = None
) -> tuple[bytes, int] | None:
    """The filter's BPF (as the create compiled it, else built now) and its flags; None
    without a filter. Called before the root moves: a build uses the host's cache.
    """
    if not filter_:
        return None
    program = None
    if compiled:
        with contextlib.suppress(ValueError):
            program = base64.b64decode(compiled, validate=True)
    try:
        if not program or len(program) % 8:
            program = seccomp.program(filter_)
        return program, seccomp.filter_flags(filter_)
    except OSError as exc:
        raise RuntimeFailure(f"seccomp filter: {exc}") from None


def _confine(
    process: Mapping[str, Any],
    masks: dict[str, int] | None,
    program: tuple[bytes, int] | None,
    session_keyring: str,
) -> None:
    """A fresh session keyring, the user and capabilities, and the seccomp filter, in runc's order.

    The keyring comes first (the filter forbids keyctl). Without no_new_privs loading a filter
    needs CAP_SYS_ADMIN, so it goes in before the capabilities are dropped (the default
    profile allows every call the drop makes); with no_new_privs it goes in last, so that as
    few of our own calls as possible run under it.
    """
    keyring.new_session_keyring(session_keyring)
    trace.mark("init.keyring")
    late = bool(process.get("noNewPrivileges"))
    if program is not None and not late:
        seccomp.load_bpf(*program)
    _become_user(process, masks)
    if program is not None and late:
        seccomp.load_bpf(*program)
    trace.mark("init.user_seccomp")


def _env_path(env: Sequence[str]) -> str:
    for item in env:
        if item.startswith("PATH="):
            return item[5:]
    return ""


def lookup_command(command: str, path: str) -> str:
    """Resolve ``command`` like Go's ``exec.LookPath``, against the container's ``PATH``."""
    if not command:
        raise InvalidArgument("no command specified")
    if "/" in command:
        try:
            st = os.stat(command)
        except FileNotFoundError:
            raise CommandNotFound(f'exec: "{command}": stat {command}: no such file or directory') from None
        except OSError as exc:
            raise PermissionDenied(f'exec: "{command}": stat {command}: {exc.strerror}') from None
        if stat.S_ISDIR(st.st_mode) or not os.access(command, os.X_OK):
            raise PermissionDenied(f'exec: "{command}": permission denied')
        return command
    denied = False
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", command)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(candidate, os.X_OK):
            return candidate
        denied = True
    if denied:
        raise PermissionDenied(f'exec: "{command}": permission denied')
    raise CommandNotFound(f'exec: "{command}": executable file not found in $PATH')


def _restore_signals(mask: set[signal.Signals] | None = None) -> None:
    """The exec'd process must not inherit Python's ignored SIGPIPE/SIGXFSZ or our blocked mask."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, *FORWARDED_SIGNALS, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask or set())


def _exec(process: Mapping[str, Any]) -> NoReturn:
    args = [str(a) for a in process.get("args", [])]
    if not args:
        raise InvalidArgument("no command specified")
    env = [str(e) for e in process.get("env", [])]
    path = lookup_command(args[0], _env_path(env))
    environ = dict(item.split("=", 1) for item in env if "=" in item)
    if process.get("apparmorProfile"):  # at the exec, as runc: nothing before runs confined
        apparmor.apply_exec_profile(str(process["apparmorProfile"]))
    _restore_signals()
    trace.mark("init.execve")
    try:
        os.execve(path, args, environ)
    except FileNotFoundError:
        raise CommandNotFound(f"exec {path}: no such file or directory") from None
    except PermissionError:
        raise PermissionDenied(f"exec {path}: permission denied") from None
    except OSError as exc:
        raise RuntimeFailure(f"exec {path}: {exc.strerror}") from None


def _block_signals() -> None:
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, lambda *_: None)  # a handler, so signals from outside the pidns arrive
    signal.pthread_sigmask(signal.SIG_BLOCK, {*FORWARDED_SIGNALS, signal.SIGCHLD})


def _relay(child: int) -> int:
    """Forward signals to ``child`` and reap every zombie until ``child`` exits; its exit code."""
    waited = {*FORWARDED_SIGNALS, signal.SIGCHLD}
    while True:
        info = signal.sigwaitinfo(waited)
        if info.si_signo != signal.SIGCHLD:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, info.si_signo)
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 128
            if pid == 0:
                break
            if pid == child:
                return _sync.status_exit_code(status)


def _start_child(process: Mapping[str, Any], error_fd: int) -> int:
    """Fork the process that will exec; in the child this never returns."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            if process.get("terminal"):
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
                with contextlib.suppress(OSError):
                    os.tcsetpgrp(0, os.getpid())
            _exec(process)
        except BaseException as exc:
            _fail(error_fd, exc)
    os.close(error_fd)
    return pid


def run_container_init(
    bundle: Path,
    config: Mapping[str, Any],
    *,
    error_fd: int,
    cgroup_ready: int | None = None,
    prepared_network: int | None = None,
) -> NoReturn:
    """Become the container described by ``config`` (run as PID 1 of a fresh pid namespace).

    With the ``org.containerkit.init`` annotation this process stays PID 1: it forks the command,
    forwards signals to it, reaps every orphan and exits with the command's exit code.
    ``cgroup_ready``: a pipe the caller writes one byte to once this process is in its cgroup
    (EOF: it could not be); read before the cgroup namespace is made, long before the exec.
    ``prepared_network``: see :func:`_setup_namespaces`.
    """
    try:
        trace.hold()  # before the root moves
        trace.mark("init.begin")
        process = config.get("process", {})
        init_mode = config.get("annotations", {}).get(INIT_ANNOTATION) == "true"
        if init_mode:
            # named as dockerd's init shows in top and ps, not as the interpreter it was forked
            # from; a kernel that refuses leaves the old title, which is no reason to fail
            with contextlib.suppress(OSError):
                proctitle.set_title(["/sbin/docker-init", "--", *process.get("args", [])], "docker-init")
        masks = _capability_masks(process)
        program = _seccomp_program(
            config.get("linux", {}).get("seccomp"),
            config.get("annotations", {}).get(SECCOMP_PROGRAM_ANNOTATION),
        )
        trace.mark("init.caps_seccomp_program")
        _setup_rootfs(Path(bundle), config, cgroup_ready, prepared_network)
        _apply_limits(process)
        _setup_session(process)
        # runc names it after the container id; an engine bundle lives in <root>/<id>/bundle
        _confine(process, masks, program, f"_ses.{Path(bundle).absolute().parent.name}")
        if not init_mode:
            _exec(process)
        lookup_command(str((process.get("args") or [""])[0]), _env_path(process.get("env", [])))
        _block_signals()
        child = _start_child(process, error_fd)
    except BaseException as exc:
        _fail(error_fd, exc)
    os._exit(_relay(child))


def exec_in_container(target_pid: int, process: Mapping[str, Any], *, error_fd: int) -> NoReturn:
    """Run ``process`` inside ``target_pid``'s container (``docker exec``); exit with its exit code.

    Called in a fresh single-threaded child in the host namespaces: it joins the target's
    cgroups and namespaces, forks (the pid namespace only applies to children) and waits.
    """
    try:
        program = _seccomp_program(process.get(EXEC_SECCOMP_KEY), process.get(SECCOMP_PROGRAM_ANNOTATION))
        session_keyring = str(process.get(EXEC_KEYRING_KEY) or f"_ses.exec.{target_pid}")
        try:
            namespaces.join_process_cgroups(target_pid)
            fds = namespaces.open_namespaces(target_pid, _EXEC_NAMESPACES)
        except FileNotFoundError:
            raise RuntimeFailure(f"container process {target_pid} is not running") from None
        joins_userns = "user" in fds
        namespaces.join_namespaces(fds)
        if joins_userns:  # its root from now on, as runc's nsexec: what we make (keys too) is its
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            os.setgroups([])
        _block_signals()
        pid = os.fork()
        if pid == 0:
            _apply_limits(process)
            _setup_session(process)
            _confine(process, None, program, session_keyring)
            _exec(process)
        os.close(error_fd)
    except BaseException as exc:
        _fail(error_fd, exc)
    os._exit(_relay(pid))
