"""containerkitd as a service: detached (``--detach``), its pidfile and log file, systemd socket
activation (``LISTEN_FDS``/``LISTEN_PID``, ``NOTIFY_SOCKET``) and the shipped units.

Every daemon here is a real process on a temp root and socket; each fixture stops it (SIGTERM,
then SIGKILL), removes its containers and checks that no mount, cgroup or process is left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import containerkit as ck
from containerkit.daemon.service import LOG_MAX_BYTES, setup_logging

from .conftest import IMAGE, UnixHTTPConnection

docker = pytest.importorskip("docker")

REPO = Path(__file__).resolve().parents[2]
DAEMON = [sys.executable, "-m", "containerkit.daemon"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes (reaped by whoever is its parent)
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _ping(path: Path) -> int:
    conn = UnixHTTPConnection(str(path), timeout=5)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status
    finally:
        conn.close()


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _clean(root: Path) -> None:
    """Remove what the daemon made and check that nothing of it is left on the host."""
    with ck.Engine(root=root) as engine:
        ids = [c.id for c in engine.containers.list(all=True)]
        for container in engine.containers.list(all=True):
            container.remove(force=True)
    leaks = [line for line in Path("/proc/mounts").read_text().splitlines() if str(root) in line]
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    leaks += [line for line in ps.splitlines() if any(i in line for i in ids) or str(root) in line]
    # each hierarchy's containerkit/<id>; no recursive walk: other tests' spare cgroups come and go
    leaks += [
        str(h / "containerkit" / i)
        for h in Path("/sys/fs/cgroup").iterdir()
        for i in ids
        if (h / "containerkit" / i).exists()
    ]
    assert leaks == [], leaks


class Detached:
    """Paths of one detached daemon."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.socket = base / "ckd.sock"
        self.pidfile = base / "run" / "ckd.pid"
        self.log_file = base / "log" / "containerkitd.log"

    def argv(self, *extra: str) -> list[str]:
        return [
            *DAEMON,
            "--detach",
            "--root",
            str(self.root),
            "--host",
            f"unix://{self.socket}",
            "--pidfile",
            str(self.pidfile),
            "--log-file",
            str(self.log_file),
            *extra,
        ]

    def start(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(), capture_output=True, text=True, timeout=60)

    @property
    def pid(self) -> int:
        return int(self.pidfile.read_text())


@contextlib.contextmanager
def _detached(base: Path, busybox_rootfs_tar: Path) -> Iterator[Detached]:
    d = Detached(base)
    with ck.Engine(root=d.root) as engine:
        engine.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
    pids: list[int] = []
    try:
        started = d.start()
        assert started.returncode == 0, started.stderr
        pids.append(d.pid)
        yield d
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError):
            pids.append(d.pid)
        for pid in set(pids):
            _stop(pid)
        _clean(d.root)


@pytest.fixture(scope="module")
def detached(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[Detached]:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    with _detached(tmp_path_factory.mktemp("ckd-detached"), busybox_rootfs_tar) as d:
        yield d


@pytest.fixture(scope="module")
def dclient(detached: Detached) -> Iterator[Any]:
    client = docker.DockerClient(base_url=f"unix://{detached.socket}", timeout=60)
    yield client
    client.close()


def test_detach_returns_once_serving_in_its_own_session(detached: Detached) -> None:
    # no retry: --detach returned only after the daemon answered
    assert _ping(detached.socket) == 200
    pid = detached.pid
    assert _pid_alive(pid)
    # a new session (python-daemon's double fork: not its leader, so it never gets a terminal)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ppid, sid, tty = int(stat[1]), int(stat[3]), int(stat[4])
    assert ppid != os.getpid() and sid not in (os.getsid(0), pid) and tty == 0
    assert oct(detached.socket.stat().st_mode & 0o777) == "0o660"
    # fds 0-2 are /dev/null and inherited by children (the cause of the old unshare EINVAL)
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
        flags = Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split("flags:")[1].split()[0]
        assert int(flags, 8) & 0o2000000 == 0, f"fd {fd} of the daemon is close-on-exec"


def test_detached_daemon_runs_containers_with_their_output(dclient: Any) -> None:
    out = dclient.containers.run(
        IMAGE, ["sh", "-c", "echo to-out; echo to-err >&2"], remove=True, stderr=True
    )
    assert out == b"to-out\nto-err\n"


def test_detached_daemon_start_logs_exec_attach_stop(dclient: Any) -> None:
    container = dclient.containers.run(
        IMAGE,
        ["sh", "-c", "echo started; i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done"],
        detach=True,
    )
    try:
        deadline = time.monotonic() + 20
        while b"tick2" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert container.logs().startswith(b"started\ntick1\n")
        result = container.exec_run(["sh", "-c", "echo in-exec; exit 3"])
        assert (result.exit_code, result.output) == (3, b"in-exec\n")
        stream = container.attach(stream=True, logs=False)
        first = next(iter(stream))
        assert first.startswith(b"tick")
        container.stop(timeout=1)
        container.reload()
        assert container.status == "exited"
    finally:
        container.remove(force=True)


def test_detached_daemon_logs_to_its_file(detached: Detached) -> None:
    text = detached.log_file.read_text()
    assert f"listening on unix://{detached.socket}" in text
    assert oct(detached.log_file.stat().st_mode & 0o777) == "0o640"


def test_second_daemon_on_the_pidfile_or_socket_is_refused(detached: Detached, tmp_path: Path) -> None:
    same_pidfile = subprocess.run(
        [
            *detached.argv()[:-6],
            "--host",
            f"unix://{tmp_path / 'other.sock'}",
            "--pidfile",
            str(detached.pidfile),
            "--log-file",
            str(tmp_path / "other.log"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert same_pidfile.returncode == 1
    assert f"already running (pid {detached.pid}, pidfile {detached.pidfile})" in same_pidfile.stderr
    same_socket = subprocess.run(
        [*DAEMON, "--root", str(tmp_path / "root"), "--host", f"unix://{detached.socket}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert same_socket.returncode == 1
    assert f"another daemon is listening on unix://{detached.socket}" in same_socket.stderr
    assert not (tmp_path / "other.sock").exists()
    assert _ping(detached.socket) == 200  # untouched


def test_stale_pidfile_is_taken_over_and_removed_at_stop(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    gone = subprocess.Popen(["true"])
    gone.wait()
    d = Detached(tmp_path)
    d.pidfile.parent.mkdir(parents=True)
    d.pidfile.write_text(f"{gone.pid}\n")
    with _detached(tmp_path, busybox_rootfs_tar):
        pid = d.pid
        assert pid != gone.pid
        assert f"pidfile {d.pidfile} named pid {gone.pid}, which is gone" in d.log_file.read_text()
        _stop(pid)
        assert not d.pidfile.exists()
        assert not d.socket.exists()
        assert "stopping; containers keep running" in d.log_file.read_text()


def test_start_up_failure_of_a_detached_daemon_is_reported(tmp_path: Path) -> None:
    d = Detached(tmp_path)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = subprocess.run(
        [*d.argv(), "--log-file", str(not_a_dir / "x.log")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"--log-file {not_a_dir / 'x.log'}" in result.stderr
    assert not d.pidfile.exists()


def test_log_file_is_rotated(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    path = tmp_path / "log" / "containerkitd.log"
    try:
        setup_logging("info", path)
        line = "x" * 65536
        for _ in range(LOG_MAX_BYTES // len(line) + 2):
            logging.getLogger("containerkit.daemon").info("%s", line)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    assert path.with_name("containerkitd.log.1").stat().st_size > LOG_MAX_BYTES - 2 * 65536
    assert path.stat().st_size < LOG_MAX_BYTES


# -- systemd socket activation --------------------------------------------------------------------

_EXEC_AS_SYSTEMD = """\
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""
"""What systemd does before exec: the listening socket on fd 3, LISTEN_PID our own pid."""


def _activated(sock: socket.socket, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _EXEC_AS_SYSTEMD, str(sock.fileno()), *argv],
        pass_fds=(sock.fileno(),),
        env={**os.environ, "LISTEN_FDS": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_socket_activation_serves_the_passed_socket(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    root = tmp_path / "root"
    with ck.Engine(root=root) as engine:
        engine.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
    path = tmp_path / "run" / "containerkit.sock"
    path.parent.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    proc: subprocess.Popen[bytes] | None = None
    try:
        listener.bind(str(path))
        os.chmod(path, 0o660)
        listener.listen(16)
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(60)
        # no --host: sockets passed to this pid are served as with -H fd://
        proc = _activated(
            listener,
            ["-m", "containerkit.daemon", "--root", str(root)],
            {"NOTIFY_SOCKET": str(tmp_path / "notify")},
        )
        listener.close()  # only the daemon holds it now, as with systemd after the hand-over
        assert notify.recv(4096).split(b"\n")[0] == b"READY=1"
        client = docker.DockerClient(base_url=f"unix://{path}", timeout=60)
        try:
            assert client.ping()
            assert client.containers.run(IMAGE, ["echo", "activated"], remove=True) == b"activated\n"
        finally:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else b""
        assert path.exists(), "the socket belongs to the socket unit: the daemon must not remove it"
        assert oct(path.stat().st_mode & 0o777) == "0o660"
    finally:
        listener.close()
        notify.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        _clean(root)


def test_listen_fds_semantics(tmp_path: Path) -> None:
    """sd_listen_fds: only for LISTEN_PID, fds from 3, the variables unset once read."""
    script = """\
import os, socket, json
from containerkit.daemon.activation import listen_sockets
socks = listen_sockets()
print(json.dumps([[s.fileno(), s.getsockname()] for s in socks]
                 + [k for k in ("LISTEN_PID", "LISTEN_FDS") if k in os.environ]))
"""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(tmp_path / "s"))
        listener.listen(1)
        ours = _activated(listener, ["-c", script], {})
        out, err = ours.communicate(timeout=60)
        assert ours.returncode == 0, err
        # fd 3, the socket we bound; LISTEN_PID and LISTEN_FDS no longer in the environment
        assert json.loads(out) == [[3, str(tmp_path / "s")]]
        not_ours = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "LISTEN_FDS": "1", "LISTEN_PID": "1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(not_ours.stdout) == [], not_ours.stderr
    finally:
        listener.close()


def test_fd_host_without_sockets_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [*DAEMON, "--root", str(tmp_path), "--host", "fd://"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "--host fd:// but no sockets were passed" in result.stderr


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    beside = Path(sys.executable).with_name("containerkitd")  # this interpreter's install first
    binary = str(beside) if beside.exists() else shutil.which("containerkitd") or str(beside)
    for name in ("containerkitd.service", "containerkitd.socket"):
        text = (REPO / "contrib" / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace("/usr/local/bin/containerkitd", binary))
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "containerkitd.socket"), str(tmp_path / "containerkitd.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "containerkitd" in line]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr
