"""The peers the benchmarks run beside containerkit, each started the way this host allows.

* ``crun`` (1.8) refuses a host with cgroup v1 hierarchies plus ``/sys/fs/cgroup/unified``
  ("hybrid mode"): :func:`crun_times` runs it in a private mount namespace where ``unified``
  is unmounted, timing each run from inside that namespace.
* ``dockerd`` does not run on this host: :func:`throwaway_dockerd` starts one in a new network
  namespace (its bridge, if any, lives and dies there) and a private mount namespace, with its
  own data root, exec root and socket, and imports busybox into it as ``busybox:latest``.
* ``podman`` (as root) raises its containers' rlimits past what this host allows:
  :func:`throwaway_podman` caps them in a containers.conf of its own, over a root of its own
  (cgroupfs, runc), with a network namespace for its default bridge.
* ``containerkitd``: :func:`containerkitd` on a temp socket over an engine root.

Each yields what it made or a reason it could not (never an exception for a missing peer).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_CRUN_LOOP = r"""
import json, subprocess, sys, time, uuid
from concurrent.futures import ThreadPoolExecutor
root, bundle, runs, parallel = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if sys.argv[5] == "umount":
    subprocess.run(["umount", "/sys/fs/cgroup/unified"], check=True)
def one():
    name = "bench-" + uuid.uuid4().hex[:12]
    r = subprocess.run(["crun", "--root", root, "run", "--bundle", bundle, name], capture_output=True)
    if r.returncode:
        raise SystemExit("crun run: " + r.stderr.decode().strip()[-200:])
if parallel <= 1:
    one(); one()  # warm
    out = []
    for _ in range(runs):
        t = time.perf_counter(); one(); out.append((time.perf_counter() - t) * 1000)
else:
    t = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: one(), range(runs)))
    out = [(time.perf_counter() - t) * 1000]
print(json.dumps(out))
"""


def crun_times(bundle: Path, state_root: Path, runs: int, parallel: int = 1) -> list[float] | str:
    """``crun run`` of ``bundle``: ``runs`` single timings (ms), or with ``parallel`` > 1 the
    total of ``runs`` runs that many at a time; a string saying why not."""
    if not shutil.which("crun"):
        return "not installed"
    hybrid = Path("/sys/fs/cgroup/unified").is_mount()
    done = subprocess.run(
        [
            *(["unshare", "--mount", "--propagation", "private"] if hybrid else []),
            *(sys.executable, "-c", _CRUN_LOOP, str(state_root), str(bundle), str(runs), str(parallel)),
            "umount" if hybrid else "keep",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["crun failed"])[-1][:100]
    times: list[float] = json.loads(done.stdout)
    return times


def _docker_ok(docker: list[str]) -> bool:
    return subprocess.run([*docker, "info"], capture_output=True).returncode == 0


@contextlib.contextmanager
def throwaway_dockerd(busybox_tar: Path) -> Iterator[str | tuple[str, list[str], str]]:
    """Yields ``(socket path, docker argv prefix, network namespace name)`` of a dockerd with
    ``busybox:latest``, or the reason there is none. Its published ports are reachable only
    inside that namespace. Everything it made (namespace, mounts, files) goes at the end."""
    if not shutil.which("dockerd") or not shutil.which("docker"):
        yield "dockerd or the docker CLI is not installed"
        return
    base = Path(tempfile.mkdtemp(prefix="ck-bench-dockerd-"))
    ns = f"ckbenchd{os.getpid()}"
    sock = base / "docker.sock"
    docker = ["docker", "-H", f"unix://{sock}"]
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        with (base / "dockerd.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    # not ip netns exec: it remounts /sys, hiding the cgroup hierarchies dockerd needs
                    *("nsenter", f"--net=/run/netns/{ns}", "unshare", "--mount", "--propagation", "slave"),
                    "dockerd",
                    *("--data-root", str(base / "data"), "--exec-root", str(base / "exec")),
                    *("--pidfile", str(base / "dockerd.pid"), "-H", f"unix://{sock}"),
                    # its bridge lives in the namespace; no firewall rules: nothing but loopback here
                    *("--iptables=false", "--ip6tables=false", "--ip-masq=false"),
                    # its containers' cgroups under a parent of its own, removed at the end
                    # (the default /docker parent stays behind in every hierarchy)
                    *("--cgroup-parent", f"/{ns}"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not (sock.exists() and _docker_ok(docker)):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (base / "dockerd.log").read_text(errors="replace").strip().splitlines()[-1:]
                yield f"dockerd did not start: {tail[0][:80] if tail else '?'}"
                return
            time.sleep(0.3)
        imported = subprocess.run(
            [*docker, "import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest"],
            capture_output=True,
            text=True,
        )
        if imported.returncode != 0:
            yield f"docker import failed: {imported.stderr.strip()[-80:]}"
            return
        yield str(sock), docker, ns
    finally:
        if process is not None and process.poll() is None:
            subprocess.run([*docker, "rm", "-f", *_all_containers(docker)], capture_output=True)
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        remove_cgroup_parent(ns)
        with open("/proc/mounts") as mounts:
            leftover = [line.split()[1] for line in mounts if str(base) in line]
        for point in sorted(leftover, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def remove_cgroup_parent(name: str) -> None:
    """Remove the (empty) cgroup ``name`` a peer's containers lived under, in every hierarchy."""
    for parent in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        for path in sorted((p for p in parent.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()


def _all_containers(docker: list[str]) -> list[str]:
    done = subprocess.run([*docker, "ps", "-aq"], capture_output=True, text=True)
    return done.stdout.split() if done.returncode == 0 else []


# podman as root (4.3) raises its containers' nofile and nproc limits past the hard limits this
# host allows without CAP_SYS_RESOURCE, and runc then fails with "error setting rlimit type 7";
# its containers get this process's nofile and podman's own nproc (32768 at most) instead.
_PODMAN_CONF = '[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'


@contextlib.contextmanager
def throwaway_podman(busybox_tar: Path) -> Iterator[str | tuple[list[str], str]]:
    """Yields ``(podman argv prefix, network namespace name)`` of a podman with ``busybox:latest``
    in a root of its own, or the reason there is none.

    The prefix starts with ``env CONTAINERS_CONF=...`` (one exec more than podman alone) for the
    limits above; cgroupfs, file events and runc (crun 1.8 refuses this host's hybrid cgroup
    layout), overlay storage (vfs if overlay fails). Its default bridge is to be used only inside
    the namespace (``nsenter --net=/run/netns/NAME`` before the prefix), where the bridge and its
    firewall rules die with it. At the end: its containers, mounts, conmon processes, the
    ``libpod_parent`` cgroups and the CNI state dir it made go, and the namespace and root."""
    if not shutil.which("podman"):
        yield "podman is not installed"
        return
    base = Path(tempfile.mkdtemp(prefix="ck-bench-podman-"))
    ns = f"ckbenchp{os.getpid()}"
    cni_state = Path("/var/lib/cni")
    had_cni_state = cni_state.exists()
    had_cgroups = {str(p) for p in Path("/sys/fs/cgroup").glob("*/libpod_parent")}
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1048576)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    (base / "containers.conf").write_text(_PODMAN_CONF.format(nofile=nofile, nproc=nproc))
    podman: list[str] = []
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        why = "podman failed"
        for driver in ("overlay", "vfs"):
            _podman_reset(podman, base)
            podman = [
                *("env", f"CONTAINERS_CONF={base / 'containers.conf'}", "podman"),
                *("--root", str(base / "root"), "--runroot", str(base / "run")),
                *("--tmpdir", str(base / "tmp"), "--cgroup-manager", "cgroupfs"),
                *("--events-backend", "file", "--runtime", "runc", "--storage-driver", driver),
            ]
            imported = subprocess.run(
                [*podman, "import", "--change", 'CMD ["sh"]', str(busybox_tar), "busybox:latest"],
                capture_output=True,
                text=True,
            )
            tried = imported
            if imported.returncode == 0:
                tried = subprocess.run(
                    [*podman, "run", "--rm", "--network", "none", "busybox", "true"],
                    capture_output=True,
                    text=True,
                )
                if tried.returncode == 0:
                    break
            why = f"podman ({driver}): {(tried.stderr.strip().splitlines() or ['?'])[-1][-120:]}"
        else:
            yield why
            return
        yield podman, ns
    finally:
        _podman_reset(podman, base)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        # conmon's cgroup (libpod_parent/conmon) stays busy until PID 1 reaps the exited conmons
        deadline = time.monotonic() + 15
        while _remove_cgroups("libpod_parent", had_cgroups) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not had_cni_state:  # its bridge's address allocations (host-local IPAM), now empty
            shutil.rmtree(cni_state, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def _remove_cgroups(name: str, keep: set[str]) -> bool:
    """rmdir the cgroup ``name`` (and what is under it) in every hierarchy, but those in ``keep``;
    whether some are left."""
    left = False
    for parent in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        if str(parent) in keep:
            continue
        for path in [
            *sorted((p for p in parent.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)),
            parent,
        ]:
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left = True
    return left


def _podman_reset(podman: list[str], base: Path) -> None:
    """Remove every container of the podman on ``base``, kill its conmons, unmount its mounts."""
    if podman:
        subprocess.run([*podman, "rm", "-af", "-t", "0"], capture_output=True)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                ours = str(base).encode() in b" ".join(argv)
                if ours and Path(argv[0].decode(errors="replace")).name == "conmon":
                    os.kill(int(proc.name), signal.SIGKILL)
    with open("/proc/mounts") as mounts:
        leftover = [line.split()[1] for line in mounts if str(base) in line]
    for point in sorted(leftover, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    for name in ("root", "run", "tmp"):
        shutil.rmtree(base / name, ignore_errors=True)


@contextlib.contextmanager
def containerkitd(root: Path, work: Path) -> Iterator[str]:
    """A containerkitd on ``root`` (an Engine in this process may share it); its socket path."""
    sock = work / "ckd.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "containerkit.daemon.main", "--root", str(root), "--host", f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not sock.exists() or not _ping(sock):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"containerkitd did not start on {sock}")
            time.sleep(0.05)
        yield str(sock)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ping(sock: Path) -> bool:
    import http.client
    import socket

    class _Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(str(sock))

    try:
        conn = _Conn("localhost", timeout=5)
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
