"""The built-in runtime against the real kernel, each container in its own harness process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from containerkit.linux.capabilities import capability_mask
from containerkit.runtime.bundle import (
    DEFAULT_CAPABILITIES,
    INIT_ANNOTATION,
    ROOTFS_MOUNT_ANNOTATION,
    build_oci_config,
    write_config,
)
from containerkit.spec import ContainerSpec, ImageConfig, Mount
from tests.conftest import require_root

HARNESS = Path(__file__).with_name("_builtin_harness.py")


class Box:
    """One container bundle in a temp dir, rooted on an overlay over the shared busybox tree."""

    def __init__(self, base: Path, lower: Path) -> None:
        self.base = base
        self.lower = lower
        self.bundle = base / "bundle"
        self.error_file = base / "error.json"
        self.pidfile = base / "pid"
        for d in (self.bundle / "rootfs", base / "upper", base / "work"):
            d.mkdir(parents=True)

    def configure(
        self, *, image: ImageConfig | None = None, user: Any = (0, 0, []), **spec: Any
    ) -> dict[str, Any]:
        annotations = {
            ROOTFS_MOUNT_ANNOTATION: json.dumps(
                {
                    "type": "overlay",
                    "source": "overlay",
                    "options": [f"lowerdir={self.lower},upperdir={self.base}/upper,workdir={self.base}/work"],
                }
            ),
            **spec.pop("annotations", {}),
        }
        config = build_oci_config(
            ContainerSpec(image="busybox", **spec),
            image or ImageConfig(),
            user=user,
            hostname=spec.get("hostname") or "box",
            etc_files=spec.pop("etc_files", {}) if "etc_files" in spec else {},
            mounts=[],
            cgroups_path=None,
            annotations=annotations,
        )
        write_config(self.bundle, config)
        return config

    def run(self, timeout: float = 20, **spec: Any) -> subprocess.CompletedProcess[str]:
        self.configure(**spec)
        return subprocess.run(
            [sys.executable, str(HARNESS), "run", str(self.bundle), str(self.error_file), str(self.pidfile)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, **spec: Any) -> subprocess.Popen[str]:
        self.configure(**spec)
        proc = subprocess.Popen(
            [sys.executable, str(HARNESS), "run", str(self.bundle), str(self.error_file), str(self.pidfile)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 10
        while not (self.pidfile.exists() and self.pidfile.read_text()):
            assert time.monotonic() < deadline, "container did not start"
            time.sleep(0.01)
        return proc

    @property
    def pid(self) -> int:
        return int(self.pidfile.read_text())

    def error(self) -> dict[str, str]:
        return json.loads(self.error_file.read_text()) if self.error_file.exists() else {}

    def exec(self, args: list[str], **process: Any) -> subprocess.CompletedProcess[str]:
        spec = {"args": args, "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}, **process}
        path = self.base / "process.json"
        path.write_text(json.dumps(spec))
        return subprocess.run(
            [
                sys.executable,
                str(HARNESS),
                "exec",
                str(self.pid),
                str(path),
                str(self.base / "exec-error.json"),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture
def box(tmp_path: Path, busybox_rootfs_dir: Path) -> Iterator[Box]:
    require_root()
    made = Box(tmp_path, busybox_rootfs_dir)
    yield made
    if made.pidfile.exists() and made.pidfile.read_text():
        pid = made.pid
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        assert not _alive(pid), f"container init {pid} outlived its test"
    with open("/proc/mounts") as f:
        leaked = [line for line in f if str(tmp_path) in line]
    assert leaked == [], leaked


def sh(script: str) -> dict[str, Any]:
    return {"command": ["sh", "-c", script]}


def test_echo_output_and_exit_code(box: Box) -> None:
    result = box.run(**sh("echo hello; echo oops >&2; exit 3"))
    assert (result.returncode, result.stdout, result.stderr) == (3, "hello\n", "oops\n")
    assert box.error() == {}


def test_plain_directory_root_is_bound_not_overlaid(box: Box) -> None:
    shutil.copytree(box.lower, box.bundle / "rootfs", symlinks=True, dirs_exist_ok=True)
    config = box.configure(**sh("echo written > /new; cat /proc/1/mountinfo | awk '$5 == \"/\" {print $9}'"))
    del config["annotations"][ROOTFS_MOUNT_ANNOTATION]
    write_config(box.bundle, config)
    result = subprocess.run(
        [sys.executable, str(HARNESS), "run", str(box.bundle), str(box.error_file)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0 and "overlay" not in result.stdout, result.stdout
    assert (box.bundle / "rootfs" / "new").read_text() == "written\n"


def test_is_pid_1_with_its_own_hostname(box: Box) -> None:
    result = box.run(
        hostname="web-1", **sh("echo $$; hostname; cat /etc/hostname 2>/dev/null; echo $HOSTNAME")
    )
    assert result.stdout.split() == ["1", "web-1", "web-1"]


def test_default_capabilities_are_dockers(box: Box) -> None:
    result = box.run(**sh("grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status"))
    values = {line.split(":")[0]: int(line.split()[1], 16) for line in result.stdout.splitlines()}
    assert values == dict.fromkeys(("CapPrm", "CapEff", "CapBnd"), capability_mask(DEFAULT_CAPABILITIES))


def test_cap_add_and_drop_change_the_set(box: Box) -> None:
    result = box.run(
        cap_add=["net_admin"], cap_drop=["CAP_CHOWN", "kill"], **sh("grep CapEff /proc/self/status")
    )
    expected = capability_mask([*DEFAULT_CAPABILITIES, "CAP_NET_ADMIN"]) & ~capability_mask(["CHOWN", "KILL"])
    assert int(result.stdout.split()[1], 16) == expected


def test_privileged_has_every_capability_and_no_masks(box: Box) -> None:
    with open("/proc/self/status") as f:
        bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd"))
    result = box.run(privileged=True, **sh("grep CapEff /proc/self/status; grep -c ' /proc/' /proc/mounts"))
    cap_line, masked = result.stdout.split("\n", 1)
    assert int(cap_line.split()[1], 16) == bounding
    assert masked.strip() == "0"


def test_named_user_gets_ids_groups_home_and_no_caps(box: Box) -> None:
    from containerkit.runtime.bundle import resolve_user

    rootfs = box.lower
    user = resolve_user("app", lambda p: (rootfs / p.lstrip("/")).read_bytes())
    result = box.run(user=user, **sh("id -u; id -g; id -G; echo $HOME; grep CapEff /proc/self/status"))
    assert result.stdout.splitlines() == [
        "1000",
        "1000",
        "1000 2000",
        "/home/app",
        "CapEff:\t0000000000000000",
    ]


def test_numeric_user(box: Box) -> None:
    result = box.run(user=(1234, 4321, []), **sh("id -u; id -g; touch /x 2>/dev/null || echo denied"))
    assert result.stdout.split() == ["1234", "4321", "denied"]


def test_workdir_is_created_and_used(box: Box) -> None:
    result = box.run(workdir="/srv/app", **sh("pwd"))
    assert result.stdout == "/srv/app\n"


def test_env_merges_image_then_spec(box: Box) -> None:
    image = ImageConfig(env=["A=image", "B=image"], cmd=["sh", "-c", "env"])
    result = box.run(image=image, env={"B": "spec", "C": "spec"}, hostname="h1")
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env["A"] == "image" and env["B"] == "spec" and env["C"] == "spec"
    assert (env["HOSTNAME"], env["HOME"]) == ("h1", "/")
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_read_only_root_keeps_tmpfs_writable(box: Box) -> None:
    result = box.run(
        read_only=True,
        mounts=[Mount(type="tmpfs", target="/tmp")],
        **sh("touch /x 2>/dev/null && echo root-writable; echo ok > /tmp/f && cat /tmp/f"),
    )
    assert result.stdout == "ok\n"


def test_masked_and_read_only_paths(box: Box) -> None:
    result = box.run(
        **sh(
            "wc -c < /proc/timer_list; ls /sys/firmware | wc -l;"
            " echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable;"
            " touch /sys/x 2>/dev/null && echo sysfs-writable; echo done"
        )
    )
    assert result.stdout.split() == ["0", "0", "done"]


def test_dev_has_standard_nodes_and_pts(box: Box) -> None:
    result = box.run(**sh("ls /dev; readlink /dev/ptmx; head -c 4 /dev/urandom | wc -c; ls -l /dev/null"))
    lines = result.stdout.split("\n")
    for name in ("null", "zero", "urandom", "random", "full", "tty", "pts", "shm", "mqueue", "fd"):
        assert name in lines
    assert "pts/ptmx" in lines and "4" in lines
    assert lines[-2].startswith("crw-rw-rw-")


def test_missing_command_reports_command_not_found(box: Box) -> None:
    result = box.run(command=["nosuch"])
    assert result.returncode == 127
    assert box.error() == {
        "kind": "command_not_found",
        "message": 'exec: "nosuch": executable file not found in $PATH',
    }


def test_non_executable_command_is_permission_denied(box: Box) -> None:
    result = box.run(command=["/etc/passwd"])
    assert result.returncode == 126
    assert box.error()["kind"] == "runtime_failure"


def test_symlink_to_host_etc_does_not_redirect_a_mount(box: Box, tmp_path: Path) -> None:
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    (host_dir / "marker").write_text("from host\n")
    upper = box.base / "upper"
    os.symlink("/etc", upper / "escape")  # rootfs entry pointing at the host's /etc
    config = box.configure(**sh("cat /escape/marker; ls -d /etc/marker"))
    config["mounts"].append(
        {"destination": "/escape", "type": "bind", "source": str(host_dir), "options": ["rbind", "ro"]}
    )
    write_config(box.bundle, config)
    result = subprocess.run(
        [sys.executable, str(HARNESS), "run", str(box.bundle), str(box.error_file)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.stdout.splitlines() == ["from host", "/etc/marker"], box.error()
    assert not Path("/etc/marker").exists()


def test_init_mode_reaps_zombies_and_forwards_sigterm(box: Box) -> None:
    script = (
        "sh -c 'sleep 0.1 &' ; sleep 0.3;"  # the backgrounded sleep is orphaned to PID 1
        " trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.05; done"
    )
    proc = box.start(annotations={INIT_ANNOTATION: "true"}, **sh(script))
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    children = Path(f"/proc/{box.pid}/task/{box.pid}/children").read_text().split()
    zombies = [c for c in children if not _alive(int(c))]
    assert len(children) == 1 and zombies == []
    os.kill(box.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert (proc.returncode, out) == (7, "got-term\n")


def test_init_mode_reports_exit_by_signal(box: Box) -> None:
    result = box.run(annotations={INIT_ANNOTATION: "true"}, **sh("kill -9 $$"))
    assert result.returncode == 137


def test_exec_joins_the_running_container(box: Box) -> None:
    proc = box.start(hostname="target", **sh("echo ready; echo inside > /tmp/mark; exec sleep 30"))
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        result = box.exec(
            ["sh", "-c", "hostname; cat /tmp/mark; ls /proc | grep -E '^[0-9]+$' | sort -n | head -1"]
        )
        assert result.stdout.split() == ["target", "inside", "1"]
        assert box.exec(["sh", "-c", "exit 5"]).returncode == 5
        assert box.exec(["sh", "-c", "kill -TERM $$"]).returncode == 143
        denied = box.exec(["id", "-u"], user={"uid": 1000, "gid": 1000})
        assert denied.stdout == "1000\n"
        missing = box.exec(["nosuch"])
        assert missing.returncode == 127
        report = json.loads((box.base / "exec-error.json").read_text())
        assert report["kind"] == "command_not_found"
    finally:
        os.kill(box.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def test_terminal_makes_the_pty_the_controlling_tty(box: Box) -> None:
    master, slave = os.openpty()
    try:
        box.configure(
            tty=True,
            **sh("test -t 0 && echo isatty; tty; ps -o pid,tty 2>/dev/null | tail -n +2; echo $TERM"),
        )
        proc = subprocess.Popen(
            [sys.executable, str(HARNESS), "run", str(box.bundle), str(box.error_file)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)
        slave = -1
        assert proc.wait(timeout=20) == 0, box.error()
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every slave fd is closed
                break
            if not chunk:
                break
            out += chunk
        lines = out.decode().split()
        assert lines[0] == "isatty" and lines[1].startswith("/dev/") and lines[-1] == "xterm"
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_cgroup_mounts_wait_for_the_cgroup_and_go_last_when_nothing_depends_on_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from containerkit.runtime import builtin

    done: list[str] = []
    monkeypatch.setattr(builtin, "_mount_entry", lambda _b, _r, entry: done.append(entry["destination"]))
    entries = [
        {"destination": "/proc", "type": "proc"},
        {"destination": "/sys", "type": "sysfs"},
        {"destination": "/sys/fs/cgroup", "type": "cgroup"},
        {"destination": "/dev/shm", "type": "tmpfs"},
    ]
    builtin._mount_all(Path("/b"), "/r", entries, before_cgroup=lambda: done.append("ready"))
    assert done == ["/proc", "/sys", "/dev/shm", "ready", "/sys/fs/cgroup"]

    done.clear()  # something mounted on or under it later: the order of config.json is kept
    entries.append({"destination": "/sys/fs/cgroup/x", "type": "tmpfs"})
    builtin._mount_all(Path("/b"), "/r", entries, before_cgroup=lambda: done.append("ready"))
    assert done == ["/proc", "/sys", "ready", "/sys/fs/cgroup", "/dev/shm", "/sys/fs/cgroup/x"]

    done.clear()  # no cgroup mount: still told once, after the rest
    builtin._mount_all(Path("/b"), "/r", entries[:2], before_cgroup=lambda: done.append("ready"))
    assert done == ["/proc", "/sys", "ready"]
